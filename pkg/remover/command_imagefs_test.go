package remover_test

import (
	"reflect"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/upgrade-image-cleanup/upgrade-image-cleanup/pkg/imagelist"
	"github.com/upgrade-image-cleanup/upgrade-image-cleanup/pkg/remover/report"
)

// nodeUsed is the image filesystems' usage on the node of startNode when a
// test sets one; the plan removes oldImage and mirrored, 4000 bytes.
const nodeUsed = 100000

func TestMainReportsMeasuredSpace(t *testing.T) {
	srv := startNode(t)
	srv.SetImageFsUsage(nodeUsed)
	plan := planText
	out := runIn(t, &plan, "--runtime-endpoint", srv.Endpoint())
	if out.code != exitOK {
		t.Fatalf("exit code %d, want 0; stderr:\n%s", out.code, out.stderr)
	}
	r := parseTermination(t, out)
	if want := (report.ImageFs{UsedBefore: nodeUsed, UsedAfter: nodeUsed - 4000}); r.ImageFs == nil || *r.ImageFs != want || r.BytesReclaimed != 4000 {
		t.Errorf("result %+v, imageFs %+v; want %+v beside 4000 bytes reclaimed", r, r.ImageFs, want)
	}
	lines := assertJSONLines(t, out.stderr)
	last := lines[len(lines)-1]
	if last["msg"] != "Image removal done" || last["imageFsFreed"] != float64(4000) || last["imageFsStale"] != false {
		t.Errorf("last log line = %v, want the summary with 4000 bytes freed, not stale", last)
	}
}

func TestMainImageFsThreshold(t *testing.T) {
	cases := []struct {
		name      string
		threshold string
		// used is the node's usage; 0: its ImageFsInfo is unimplemented.
		used    uint64
		fail    error
		code    int
		removes bool
		want    report.Result
		// wantErr is what the result's Error says.
		wantErr []string
	}{
		{name: "below: exit 0, nothing removed", threshold: "1Mi", used: nodeUsed, code: exitOK,
			want: report.Result{BelowThreshold: true, Threshold: 1 << 20, ImageFs: &report.ImageFs{UsedBefore: nodeUsed, UsedAfter: nodeUsed}}},
		{name: "above: removes", threshold: "50Ki", used: nodeUsed, code: exitOK, removes: true,
			want: report.Result{Removed: 2, BytesReclaimed: 4000, Threshold: 50 << 10,
				Skipped: map[report.Reason]int{report.ReasonInUse: 1, report.ReasonPinned: 1, report.ReasonNotPresent: 1},
				ImageFs: &report.ImageFs{UsedBefore: nodeUsed, UsedAfter: nodeUsed - 4000}}},
		{name: "0 is off", threshold: "0", code: exitOK, removes: true,
			want: report.Result{Removed: 2, BytesReclaimed: 4000,
				Skipped: map[report.Reason]int{report.ReasonInUse: 1, report.ReasonPinned: 1, report.ReasonNotPresent: 1}}},
		{name: "the runtime does not measure: refused, nothing removed", threshold: "1", code: exitUsage,
			wantErr: []string{"cannot check the image filesystem threshold (1 bytes), so nothing is removed", "Unimplemented"}},
		{name: "the runtime fails to measure: exit 1, nothing removed", threshold: "1", used: nodeUsed, fail: status.Error(codes.Unavailable, "restarting"), code: exitRuntime,
			wantErr: []string{"cannot check the image filesystem threshold (1 bytes), so nothing is removed", "restarting"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			srv := startNode(t)
			if tc.used > 0 {
				srv.SetImageFsUsage(tc.used)
			}
			srv.FailImageFs(tc.fail)
			plan := planText
			out := runIn(t, &plan, "--runtime-endpoint", srv.Endpoint(), "--image-fs-threshold="+tc.threshold)
			if out.code != tc.code {
				t.Fatalf("exit code %d, want %d; stderr:\n%s", out.code, tc.code, out.stderr)
			}
			assertNeverRemoved(t, srv)
			if removed := len(srv.RemoveCalls()) > 0; removed != tc.removes {
				t.Errorf("RemoveImage calls %v, want some: %t", srv.RemoveCalls(), tc.removes)
			}
			r := parseTermination(t, out)
			if tc.wantErr != nil {
				for _, s := range tc.wantErr {
					if !strings.Contains(r.Error, s) {
						t.Errorf("result's error %q does not say %q", r.Error, s)
					}
				}
				return
			}
			if r.PlanDigest != imagelist.Digest([]byte(planText)) {
				t.Errorf("result names plan %q, want the digest of the plan it read", r.PlanDigest)
			}
			r.PlanDigest = ""
			if !reflect.DeepEqual(r, tc.want) {
				t.Errorf("result %+v, imageFs %+v; want %+v, imageFs %+v", r, r.ImageFs, tc.want, tc.want.ImageFs)
			}
			if !tc.want.BelowThreshold {
				return
			}
			var said bool
			for _, l := range assertJSONLines(t, out.stderr) {
				if strings.Contains(l["msg"].(string), "below the threshold") {
					said = l["imageFsUsed"] == float64(nodeUsed) && l["imageFsThreshold"] == float64(1<<20)
				}
			}
			if !said {
				t.Errorf("stderr has no line saying the usage is below the threshold, with both figures:\n%s", out.stderr)
			}
		})
	}
}
