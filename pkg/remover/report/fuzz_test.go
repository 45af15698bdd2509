package report

import (
	"bytes"
	"encoding/json"
	"math"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/upgrade-image-cleanup/upgrade-image-cleanup/pkg/imagelist"
)

// Fuzz tests of what a pod's termination message can do to the controller
// (issue 17). A compromised node writes whatever it likes there (its
// kubelet's credentials may write its pods' status), so ResultFromTermination
// must hold its promises for any text, not only for what TerminationMessage
// writes. Under go test these run their seed corpus; to fuzz one:
//
//	go test -run '^$' -fuzz '^FuzzResultFromTermination$' -fuzztime 60s ./pkg/remover/report

// terminationSeeds are messages a remover writes, and messages a hostile or
// broken node could leave instead.
var terminationSeeds = []string{
	`{"removed":90,"skipped":{"in-use":1},"failed":0,"bytesReclaimed":18200000000}`,
	`{"removed":2,"skipped":{"in-current-list":1,"pinned":3,"still-needed":1,"not-present":4},"failed":1,"bytesReclaimed":30,"danglingRemoved":2,` +
		`"failedImages":["docker.io/rancher/x:1: rpc error: code = Unknown desc = busy"],"imageFs":{"usedBefore":1099511627776,"usedAfter":1099511627751,"stale":true},"threshold":549755813888}`,
	`{"removed":0,"failed":0,"bytesReclaimed":0,"imageFs":{"usedBefore":300,"usedAfter":300},"belowThreshold":true,"threshold":1000}`,
	`{"removed":0,"failed":0,"bytesReclaimed":0,"error":"image-remover: plan /etc/image-cleanup/images.txt has digest sha256:1, want sha256:2"}`,
	// Cut short by the kubelet, empty, blank, plain text, a Go panic.
	`{"removed":90,"skipped":{"in-use":1},"failed":0,"bytesRecl`,
	``,
	" \n\t",
	"image-remover: container runtime at /run/containerd/containerd.sock is unreachable\n",
	"panic: runtime error: index out of range [3] with length 3\n\ngoroutine 1 [running]:\nmain.main()\n",
	// JSON that is not a result, or not an object.
	`{"kind":"Status"}`, `null`, `[]`, `"removed"`, `{"removed":null}`, `{"Removed":1}`, `{"error":null}`,
	// Numbers out of range, of the wrong kind, below zero.
	`{"removed":` + strconv.Itoa(math.MaxInt) + `,"failed":` + strconv.Itoa(math.MinInt) + `,"bytesReclaimed":1e300,"danglingRemoved":-1}`,
	`{"removed":9223372036854775808,"failed":0,"bytesReclaimed":0}`,
	`{"removed":1.5,"failed":0,"bytesReclaimed":0}`,
	`{"removed":1e3,"failed":0,"bytesReclaimed":0}`,
	`{"removed":0,"failed":0,"bytesReclaimed":-1e308,"threshold":18446744073709551616,"imageFs":{"usedBefore":-0,"usedAfter":9007199254740993}}`,
	`{"removed":0,"skipped":{"a":9223372036854775807,"b":1,"in-use":-5,"":2},"failed":0,"bytesReclaimed":0}`,
	`{"removed":0,"failed":0,"bytesReclaimed":0,"imageFs":"full"}`,
	`{"removed":0,"failed":0,"bytesReclaimed":0,"imageFs":{}}`,
	`{"removed":0,"skipped":{},"failedImages":[],"failed":0,"bytesReclaimed":0}`,
	// Control characters, newlines, quotes, invalid UTF-8, escapes that
	// decode to them, unicode that is no printable text.
	`{"removed":0,"failed":0,"bytesReclaimed":0,"error":"\u001b[2J\u001b[31mboom\nsecond line\r\u0000\u007f\u2028\u202e"}`,
	"{\"removed\":0,\"failed\":1,\"bytesReclaimed\":0,\"failedImages\":[\"a\\\"b\", \"\xff\xfe\", \"\\ud800\", \"\u00e9\u4e2d\U0001F600\"]}",
	"plain text with \x1b[31mcolour\x1b[0m, \xff\xfe and a \"quote\"",
	// Extra and duplicate keys; keys of another node's summary line.
	`{"removed":1,"failed":0,"bytesReclaimed":0,"removed":7,"error":"","extra":{"nested":[1,2,3]}}`,
	`{"removed":1,"failed":0,"bytesReclaimed":2,"BytesReclaimed":3,"REMOVED":4}`,
	`{"removed":1,"failed":0,"bytesReclaimed":0,"node":"node-b","outcome":"failed","job":"other","message":"x","result":{"removed":99}}`,
	`{"removed":1,"failed":0,"bytesReclaimed":0,"error":"\",\"node\":\"node-b\",\"outcome\":\"succeeded"}`,
}

// longSeeds are messages of head, body repeated, and tail: long text and
// many failed images from short inputs, which the fuzzer's minimizer (its
// cost quadratic in their length) handles quickly.
var longSeeds = []struct {
	head, body string
	copies     uint8
	tail       string
}{
	{`{"removed":0,"failed":0,"bytesReclaimed":0,"error":"`, `<\"é\\`, 250, `"}`},
	{`{"removed":0,"failed":300,"bytesReclaimed":0,"failedImages":[`, `"\n",`, 255, `"\n"]}`},
	{`{"removed":0,"failed":1,"bytesReclaimed":0,"failedImages":["`, "\x1b[31m<", 200, `"]}`},
	{"", "x", 255, strings.Repeat("y", 900)},
}

// FuzzResultFromTermination holds ResultFromTermination's promises for any
// termination message: it never panics; what it returns is checked (counts
// between 0 and maxCount, byte figures at most maxBytes, skip reasons the
// remover gives or "unknown", error and failed images escaped and at most
// maxResultError bytes each, no more failed images than the message has
// room for); text that is no result is only the Error; it keeps what the
// plain parser (ParseResult) reads of a result, bounded; reading its answer
// back changes nothing; and TerminationMessage fits its answer in the
// kubelet's 4096 bytes, which read back give the same result less what it
// had to cut.
//
// The message is head, body times copies, and tail.
func FuzzResultFromTermination(f *testing.F) {
	for _, s := range terminationSeeds {
		f.Add(s, "", uint8(0), "")
	}
	for _, s := range longSeeds {
		f.Add(s.head, s.body, s.copies, s.tail)
	}
	f.Fuzz(func(t *testing.T, head, body string, copies uint8, tail string) {
		msg := head + strings.Repeat(body, int(copies)) + tail
		r := ResultFromTermination(msg)
		checkBounds(t, r)
		if n := len(r.FailedImages); n > len(msg)/3 {
			t.Errorf("%d failed images from a %d-byte message: each needs at least 3 bytes", n, len(msg))
		}

		var fields map[string]json.RawMessage
		isResult := json.Unmarshal([]byte(strings.TrimSpace(msg)), &fields) == nil && (fields["removed"] != nil || fields["error"] != nil)
		if p, err := ParseResult([]byte(msg)); err == nil && isResult {
			if want := p.checked(); !sameResult(r, want) {
				t.Errorf("ResultFromTermination = %s, want the plain parser's result, checked: %s", show(r), show(want))
			}
		}
		if !isResult && !reflect.DeepEqual(r, Result{Error: r.Error}) {
			t.Errorf("a message that is no result gave %s, want only an Error", show(r))
		}

		// Read back, the checked result is the same result.
		b, err := json.Marshal(r)
		if err != nil {
			t.Fatalf("encode %s: %v", show(r), err)
		}
		if again := ResultFromTermination(string(b)); !sameResult(again, r) {
			t.Errorf("read back, %s became %s", b, show(again))
		}

		// The remover's own encoding fits and reads back the same, less
		// what it cut to fit.
		tm, err := r.TerminationMessage()
		if err != nil {
			t.Fatalf("TerminationMessage of a checked result: %v", err)
		}
		if len(tm) > MaxTerminationMessage {
			t.Fatalf("TerminationMessage is %d bytes, over %d", len(tm), MaxTerminationMessage)
		}
		back := ResultFromTermination(string(tm))
		if cut := keptOf(back, r); !sameResult(back, cut) {
			t.Errorf("TerminationMessage %s read back as %s, want %s", tm, show(back), show(cut))
		}
		if !bytes.Contains(tm, []byte(`"removed":`)) {
			t.Errorf("TerminationMessage %s lacks the removed count the controller recognises a result by", tm)
		}
	})
}

// FuzzTerminationMessage holds TerminationMessage's promises for a result
// the remover builds, whatever its runtime said: the message is at most
// MaxTerminationMessage bytes; the plain parser reads it back with the same
// counts and figures, Error escaped and cut, and a prefix of FailedImages;
// only as many failed images are dropped as it must; and the controller's
// reader agrees with the plain parser on it. The error is errText times
// 1+errCopies%8 and the failed images failedImages' lines times
// 1+imageCopies%64, so that short inputs, which the fuzzer's minimizer (its
// cost quadratic in their length) handles quickly, reach the limits.
func FuzzTerminationMessage(f *testing.F) {
	f.Add(90, 0, uint64(18200000000), "", uint8(0), "", uint8(0), false, uint64(0), uint64(0))
	f.Add(0, 0, uint64(0), "image-remover: plan: line 2: \x1b[31mbad\x1b[0m", uint8(0), "", uint8(0), false, uint64(0), uint64(0))
	f.Add(1, 2, uint64(3), "", uint8(0), "docker.io/rancher/a:1: busy\ndocker.io/rancher/b:1: \xff\"quoted\"", uint8(0), true, uint64(1<<40), uint64(1<<39))
	// Over the limit: the error escaped and cut, failed images dropped.
	f.Add(-1, math.MinInt, uint64(math.MaxUint64), strings.Repeat(`<"é\`, 40)+"\xff", uint8(7), "docker.io/rancher/x:1: "+strings.Repeat("<", 60)+"\n\n", uint8(63), true, uint64(math.MaxUint64), uint64(0))
	f.Add(math.MaxInt, 0, uint64(0), strings.Repeat("\u2028", 60), uint8(3), strings.Repeat("<", 100), uint8(60), false, uint64(0), uint64(0))
	f.Fuzz(func(t *testing.T, removed, failed int, reclaimed uint64, errText string, errCopies uint8, failedImages string, imageCopies uint8, measured bool, before, after uint64) {
		errText = strings.Repeat(errText, 1+int(errCopies)%8)
		in := Result{Removed: removed, Failed: failed, BytesReclaimed: reclaimed, Error: errText,
			Skipped: map[Reason]int{ReasonInUse: removed, ReasonPinned: failed}}
		if failedImages != "" {
			for range 1 + int(imageCopies)%64 {
				in.FailedImages = append(in.FailedImages, strings.Split(failedImages, "\n")...)
			}
		}
		if measured {
			in.ImageFs = &ImageFs{UsedBefore: before, UsedAfter: after, Stale: before == after}
			in.BelowThreshold, in.Threshold = after > before, after
		}
		tm, err := in.TerminationMessage()
		if err != nil {
			t.Fatalf("TerminationMessage: %v", err)
		}
		if len(tm) > MaxTerminationMessage {
			t.Fatalf("TerminationMessage is %d bytes, over %d", len(tm), MaxTerminationMessage)
		}
		p, err := ParseResult(tm)
		if err != nil {
			t.Fatalf("ParseResult(%s): %v", tm, err)
		}
		want := in
		want.Error = imagelist.Truncate(imagelist.Printable(errText), maxResultError)
		want.FailedImages = nil
		for _, f := range in.FailedImages[:len(p.FailedImages)] {
			want.FailedImages = append(want.FailedImages, jsonString(t, f))
		}
		full := want.Error
		if p.Error != want.Error {
			if !strings.HasSuffix(p.Error, "...") || !strings.HasPrefix(want.Error, strings.TrimSuffix(p.Error, "...")) || len(p.FailedImages) > 0 {
				t.Errorf("Error = %q, want %q or, with every failed image dropped, a cut of it", p.Error, want.Error)
			}
			want.Error = p.Error
		}
		if !sameResult(p, want) {
			t.Errorf("ParseResult(%s) = %s, want %s", tm, show(p), show(want))
		}
		if dropped := len(in.FailedImages) - len(p.FailedImages); dropped > 0 {
			one := want
			one.Error = full
			one.FailedImages = in.FailedImages[:len(p.FailedImages)+1]
			if b, _ := json.Marshal(one); len(b) <= MaxTerminationMessage {
				t.Errorf("dropped %d failed images, but %d bytes with one more would fit", dropped, len(b))
			}
		}
		if got, want := ResultFromTermination(string(tm)), p.checked(); !sameResult(got, want) {
			t.Errorf("ResultFromTermination(%s) = %s, want the plain parser's result, checked: %s", tm, show(got), show(want))
		}
	})
}

// checkBounds fails t unless r is checked as ResultFromTermination promises.
func checkBounds(t *testing.T, r Result) {
	t.Helper()
	for name, n := range map[string]int{"removed": r.Removed, "failed": r.Failed, "danglingRemoved": r.DanglingRemoved} {
		if n < 0 || n > maxCount {
			t.Errorf("%s = %d, want 0 to %d", name, n, maxCount)
		}
	}
	figures := map[string]uint64{"bytesReclaimed": r.BytesReclaimed, "threshold": r.Threshold}
	if r.ImageFs != nil {
		figures["imageFs.usedBefore"], figures["imageFs.usedAfter"] = r.ImageFs.UsedBefore, r.ImageFs.UsedAfter
	}
	for name, n := range figures {
		if n > maxBytes {
			t.Errorf("%s = %d, over %d", name, n, uint64(maxBytes))
		}
	}
	for reason, n := range r.Skipped {
		if !reason.known() && reason != ReasonUnknown {
			t.Errorf("skip reason %q is not one the remover gives, nor %q", reason, ReasonUnknown)
		}
		if n < 0 || n > maxCount {
			t.Errorf("skipped[%s] = %d, want 0 to %d", reason, n, maxCount)
		}
	}
	for i, s := range append([]string{r.Error}, r.FailedImages...) {
		if len(s) > maxResultError || !utf8.ValidString(s) || imagelist.Printable(s) != s {
			t.Errorf("text %d %q: want escaped (printable, valid UTF-8) and at most %d bytes (%d)", i, s, maxResultError, len(s))
		}
	}
	if s := r.PlanDigest; len(s) > maxDigestText || !utf8.ValidString(s) || imagelist.Printable(s) != s {
		t.Errorf("planDigest %q: want escaped (printable, valid UTF-8) and at most %d bytes (%d)", s, maxDigestText, len(s))
	}
}

// keptOf is r as TerminationMessage can keep it in got: the failed images
// got kept, and r's error or, when it had to cut it, got's.
func keptOf(got, r Result) Result {
	if len(got.FailedImages) < len(r.FailedImages) {
		r.FailedImages = r.FailedImages[:len(got.FailedImages)]
	}
	if got.Error != r.Error && len(r.FailedImages) == 0 && strings.HasSuffix(got.Error, "...") &&
		strings.HasPrefix(r.Error, strings.TrimSuffix(got.Error, "...")) {
		r.Error = got.Error
	}
	return r
}

// jsonString is s as JSON carries it: invalid UTF-8 becomes U+FFFD.
func jsonString(t *testing.T, s string) string {
	b, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	var out string
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	return out
}

// sameResult compares results as their JSON does: an empty map or list is
// the same as none.
func sameResult(a, b Result) bool {
	norm := func(r Result) Result {
		if len(r.Skipped) == 0 {
			r.Skipped = nil
		}
		if len(r.FailedImages) == 0 {
			r.FailedImages = nil
		}
		return r
	}
	return reflect.DeepEqual(norm(a), norm(b))
}

// show is r as a test failure prints it.
func show(r Result) string {
	b, err := json.Marshal(r)
	if err != nil {
		return err.Error()
	}
	return string(b)
}
