package report

import (
	"math"
	"reflect"
	"strconv"
	"testing"
)

// TestResultFromTerminationCapsCounts holds README "The
// remover": ResultFromTermination "never fails: a result is taken after a
// check (a count below zero counts as zero, a skip reason the remover does
// not give counts as `unknown` ...)".
//
// Minimal input (a pod status is not the remover's to vouch for):
// {"removed":0,"failed":0,"bytesReclaimed":0,"skipped":{"a":9223372036854775807,"b":1}}
// Expected: skipped["unknown"] >= 0. Before the fix: the two unknown reasons are added
// up in int and wrap to -9223372036854775808, a count below zero after the
// check (and the controller's total and message then say "skipped -…").
func TestResultFromTerminationCapsCounts(t *testing.T) {
	msg := `{"removed":0,"failed":0,"bytesReclaimed":0,"skipped":{"a":` + strconv.Itoa(math.MaxInt) + `,"b":1}}`
	r := ResultFromTermination(msg)
	for reason, n := range r.Skipped {
		if n < 0 {
			t.Errorf("skipped[%s] = %d after the check, want no count below zero", reason, n)
		}
	}
}

// TestResultFromTerminationNegativeBytesKeepTheResult holds the same
// promise: "a result is taken after a check (a count below zero counts as
// zero ...)", and "A non-empty `error` means the remover did not run to the
// end".
//
// Minimal input: {"removed":3,"failed":0,"bytesReclaimed":-1}
// Expected: a result with Removed 3, BytesReclaimed 0 and no Error (like
// {"removed":-1,...} is clamped). Before the fix: bytesReclaimed is a uint64, so the
// JSON does not parse as a Result and the whole message becomes Error text:
// the node's counts are lost and it reads as a remover that did not run.
func TestResultFromTerminationNegativeBytesKeepTheResult(t *testing.T) {
	r := ResultFromTermination(`{"removed":3,"failed":0,"bytesReclaimed":-1}`)
	if r.Error != "" || r.Removed != 3 || r.BytesReclaimed != 0 {
		t.Errorf("ResultFromTermination = %+v, want Removed 3, BytesReclaimed 0 (below zero counts as zero), no Error", r)
	}
}

// TestResultFromTerminationBoundsImageFs holds ResultFromTermination's
// promise for the byte figures of issue 14 (imageFs's usedBefore and
// usedAfter, threshold) as for bytesReclaimed: below zero counts as zero,
// above maxBytes counts as maxBytes, and neither makes the result
// unreadable; the flags beside them pass through.
func TestResultFromTerminationBoundsImageFs(t *testing.T) {
	const big = "1e30"
	cases := []struct {
		name string
		msg  string
		want Result
	}{
		{"measured", `{"removed":1,"failed":0,"bytesReclaimed":10,"imageFs":{"usedBefore":300,"usedAfter":290}}`,
			Result{Removed: 1, BytesReclaimed: 10, ImageFs: &ImageFs{UsedBefore: 300, UsedAfter: 290}}},
		{"stale", `{"removed":1,"failed":0,"bytesReclaimed":10,"imageFs":{"usedBefore":300,"usedAfter":300,"stale":true}}`,
			Result{Removed: 1, BytesReclaimed: 10, ImageFs: &ImageFs{UsedBefore: 300, UsedAfter: 300, Stale: true}}},
		{"below the threshold", `{"removed":0,"failed":0,"bytesReclaimed":0,"imageFs":{"usedBefore":300,"usedAfter":300},"belowThreshold":true,"threshold":1000}`,
			Result{ImageFs: &ImageFs{UsedBefore: 300, UsedAfter: 300}, BelowThreshold: true, Threshold: 1000}},
		{"not measured", `{"removed":0,"failed":0,"bytesReclaimed":0}`, Result{}},
		{"below zero", `{"removed":0,"failed":0,"bytesReclaimed":0,"imageFs":{"usedBefore":-1,"usedAfter":-5},"threshold":-3}`,
			Result{ImageFs: &ImageFs{}}},
		{"too large", `{"removed":0,"failed":0,"bytesReclaimed":` + big + `,"imageFs":{"usedBefore":` + big + `,"usedAfter":` + big + `},"threshold":` + big + `}`,
			Result{BytesReclaimed: maxBytes, ImageFs: &ImageFs{UsedBefore: maxBytes, UsedAfter: maxBytes}, Threshold: maxBytes}},
		{"just below the cap", `{"removed":0,"failed":0,"bytesReclaimed":0,"imageFs":{"usedBefore":9007199254740991,"usedAfter":0},"threshold":9007199254740991}`,
			Result{ImageFs: &ImageFs{UsedBefore: maxBytes - 1}, Threshold: maxBytes - 1}},
		{"a fraction", `{"removed":0,"failed":0,"bytesReclaimed":0,"imageFs":{"usedBefore":2.9,"usedAfter":1.5}}`,
			Result{ImageFs: &ImageFs{UsedBefore: 2, UsedAfter: 1}}},
		{"imageFs null", `{"removed":0,"failed":0,"bytesReclaimed":0,"imageFs":null}`, Result{}},
		{"imageFs of the wrong type", `{"removed":0,"failed":0,"bytesReclaimed":0,"imageFs":"full"}`,
			Result{Error: `{"removed":0,"failed":0,"bytesReclaimed":0,"imageFs":"full"}`}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := ResultFromTermination(tc.msg); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("ResultFromTermination(%s) = %+v (imageFs %+v), want %+v (imageFs %+v)", tc.msg, got, got.ImageFs, tc.want, tc.want.ImageFs)
			}
		})
	}
}

// TestCheckedCapsImageFs: a Result built in Go (not parsed) is capped too,
// and checked does not change the ImageFs its input points to.
func TestCheckedCapsImageFs(t *testing.T) {
	fs := &ImageFs{UsedBefore: math.MaxUint64, UsedAfter: 7, Stale: true}
	in := Result{ImageFs: fs, Threshold: math.MaxUint64, BytesReclaimed: math.MaxUint64}
	got := in.checked()
	want := Result{ImageFs: &ImageFs{UsedBefore: maxBytes, UsedAfter: 7, Stale: true}, Threshold: maxBytes, BytesReclaimed: maxBytes}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("checked() = %+v (imageFs %+v), want %+v (imageFs %+v)", got, got.ImageFs, want, want.ImageFs)
	}
	if fs.UsedBefore != math.MaxUint64 {
		t.Errorf("checked() changed its input's ImageFs to %+v", fs)
	}
}

// TestAResultWithAnErrorKeepsItAlone: the remover writes its error alone
// (it did not run), so figures beside an error are not its own, and
// ResultFromTermination drops them, the plan digest and the threshold's
// verdict included; ParseTermination says the message was a result.
func TestAResultWithAnErrorKeepsItAlone(t *testing.T) {
	msg := `{"removed":500,"failed":3,"bytesReclaimed":9000,"skipped":{"in-use":7},"danglingRemoved":2,"failedImages":["x"],` +
		`"imageFs":{"usedBefore":1,"usedAfter":1},"belowThreshold":true,"threshold":2,"planDigest":"sha256:x","error":"image-remover: no plan"}`
	r, isResult := ParseTermination(msg)
	if want := (Result{Error: "image-remover: no plan"}); !isResult || !reflect.DeepEqual(r, want) {
		t.Errorf("ParseTermination = %+v, %v; want %+v, true", r, isResult, want)
	}
	if _, isResult := ParseTermination("panic: runtime error"); isResult {
		t.Error("plain text read as a result")
	}
}
