package report

import (
	"encoding/json"
	"fmt"
	"reflect"
	"runtime"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestTerminationMessageCarriesTheError(t *testing.T) {
	t.Run("short error", func(t *testing.T) {
		msg, err := Result{Error: "plan: line 2: \x1b[31mbad\x1b[0m"}.TerminationMessage()
		if err != nil {
			t.Fatal(err)
		}
		r, err := ParseResult(msg)
		if err != nil {
			t.Fatalf("ParseResult(%s): %v", msg, err)
		}
		if want := `plan: line 2: \x1b[31mbad\x1b[0m`; r.Error != want {
			t.Errorf("Error = %q, want the escaped text %q", r.Error, want)
		}
	})
	t.Run("long error and many failed images still fit", func(t *testing.T) {
		// '<' and '"' are the characters JSON writes longest.
		long := strings.Repeat(`<"é\`, 5000) + "\xff"
		in := Result{Failed: 200, Error: long}
		for range 200 {
			in.FailedImages = append(in.FailedImages, "docker.io/rancher/x:1: "+strings.Repeat("<", 100))
		}
		msg, err := in.TerminationMessage()
		if err != nil {
			t.Fatal(err)
		}
		if len(msg) > MaxTerminationMessage {
			t.Errorf("termination message is %d bytes, over %d", len(msg), MaxTerminationMessage)
		}
		r, err := ParseResult(msg)
		if err != nil {
			t.Fatalf("ParseResult: %v", err)
		}
		if r.Failed != 200 || !strings.HasPrefix(r.Error, `<"é\`) || !strings.HasSuffix(r.Error, "...") || !utf8.ValidString(r.Error) {
			t.Errorf("result = %+v, want the counts and the error cut short", r)
		}
	})
}

// TestTerminationMessageManyFailedImages: a run whose every removal failed
// (a plan of 3,000 images, a runtime refusing each) names 3,000 failed
// images. TerminationMessage keeps the most that fit in 4096 bytes; it must
// find them without encoding the result again for every name it drops,
// which is quadratic: here some 700 MB of JSON and seconds of the node's
// CPU before the remover exits (seen timing FuzzResultFromTermination's
// inputs, which give it thousands). Bytes allocated stand for the work: a
// few encodings of the full result, not thousands.
func TestTerminationMessageManyFailedImages(t *testing.T) {
	const n = 3000
	in := Result{Failed: n}
	for i := range n {
		in.FailedImages = append(in.FailedImages, fmt.Sprintf("registry.example.com/harvester/image-%04d:v1.4.2: rpc error: code = Unknown desc = failed to remove image: %s", i, strings.Repeat("x", 60)))
	}
	full, err := json.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	msg, err := in.TerminationMessage()
	runtime.ReadMemStats(&after)
	if err != nil {
		t.Fatal(err)
	}
	if alloc, most := after.TotalAlloc-before.TotalAlloc, 20*uint64(len(full)); alloc > most {
		t.Errorf("TerminationMessage allocated %d bytes for a %d-byte result, want at most %d: it re-encodes once per failed image dropped", alloc, len(full), most)
	}
	r, err := ParseResult(msg)
	if err != nil {
		t.Fatalf("ParseResult(%s): %v", msg, err)
	}
	kept := len(r.FailedImages)
	if len(msg) > MaxTerminationMessage || kept == 0 || !reflect.DeepEqual(r.FailedImages, in.FailedImages[:kept]) {
		t.Fatalf("termination message of %d bytes keeps %d failed images; want at most %d bytes and the first names", len(msg), kept, MaxTerminationMessage)
	}
	in.FailedImages = in.FailedImages[:kept+1]
	if b, _ := json.Marshal(in); len(b) <= MaxTerminationMessage {
		t.Errorf("kept %d failed images, but %d would fit (%d bytes)", kept, kept+1, len(b))
	}
}

func TestResultFromTermination(t *testing.T) {
	ok := Result{Removed: 2, Skipped: map[Reason]int{ReasonInCurrentList: 1}, BytesReclaimed: 30,
		ImageFs: &ImageFs{UsedBefore: 1 << 40, UsedAfter: 1<<40 - 25, Stale: true}, Threshold: 1 << 39}
	okMsg, err := ok.TerminationMessage()
	if err != nil {
		t.Fatal(err)
	}
	failed := Result{Error: "image-remover: plan /etc/image-cleanup/images.txt: digest sha256:1, want sha256:2"}
	failedMsg, err := failed.TerminationMessage()
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		msg  string
		want Result
	}{
		{"a result", string(okMsg), ok},
		{"a result with an error", string(failedMsg), failed},
		{"plain text of an old remover", "image-remover: container runtime at /run/containerd/containerd.sock is unreachable\n",
			Result{Error: "image-remover: container runtime at /run/containerd/containerd.sock is unreachable"}},
		{"a Go panic", "panic: runtime error\n\ngoroutine 1 [running]:\n", Result{Error: `panic: runtime error\n\ngoroutine 1 [running]:`}},
		{"JSON that is not a result", `{"kind":"Status"}`, Result{Error: `{"kind":"Status"}`}},
		{"JSON null", "null", Result{Error: "null"}},
		{"a cut result", string(okMsg[:len(okMsg)-3]), Result{Error: string(okMsg[:len(okMsg)-3])}},
		{"nothing", " \n", Result{Error: "the remover left no termination message"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := ResultFromTermination(tc.msg); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("ResultFromTermination(%q) = %+v, want %+v", tc.msg, got, tc.want)
			}
		})
	}
	t.Run("long text is cut", func(t *testing.T) {
		got := ResultFromTermination(strings.Repeat("x", 10000))
		if len(got.Error) > maxResultError || !strings.HasSuffix(got.Error, "...") {
			t.Errorf("Error is %d bytes, want at most %d and marked as cut", len(got.Error), maxResultError)
		}
	})
}
