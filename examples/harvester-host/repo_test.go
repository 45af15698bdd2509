package harvesterhost

import (
	"net"
	"testing"

	"github.com/upgrade-image-cleanup/upgrade-image-cleanup/internal/repotest"
)

type testRepo struct {
	*repotest.Repo
	port int32
}

func (r testRepo) requests() []repotest.Request { return r.Requests() }

// serveLists serves the demo's lists (repotest.Lists) on 127.0.0.1 until the
// test ends.
func serveLists(t *testing.T) testRepo {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := repotest.Serve(l, repotest.Lists())
	t.Cleanup(func() { _ = r.Close() })
	return testRepo{Repo: r, port: int32(l.Addr().(*net.TCPAddr).Port)}
}
