package cleanup

import (
	"errors"
	"testing"
)

// fetchResult is unexported: the result label of the fetch counter, tested
// here as a table; the counters themselves in metrics_test.go.
func TestMetricsCountFetchFailuresByResult(t *testing.T) {
	tests := []struct {
		err  error
		want string
	}{
		{&StatusError{StatusCode: 404, Status: "404 Not Found"}, FetchNotFound},
		{&StatusError{StatusCode: 500, Status: "500 Internal Server Error"}, FetchHTTPError},
		{invalidList{errors.New("line 3: not a reference")}, FetchInvalid},
		{ErrEmptyList, FetchInvalid},
		{errors.New("dial tcp: connection refused"), FetchNetworkError},
		{nil, FetchSuccess},
	}
	for _, tt := range tests {
		if got := fetchResult(tt.err); got != tt.want {
			t.Errorf("fetchResult(%v) = %s, want %s", tt.err, got, tt.want)
		}
	}
}
