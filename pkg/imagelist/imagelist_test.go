package imagelist_test

import (
	"slices"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/distribution/reference"

	"github.com/upgrade-image-cleanup/upgrade-image-cleanup/pkg/imagelist"
)

const testDigest = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

func refStrings(refs []reference.Named) []string {
	out := make([]string, len(refs))
	for i, r := range refs {
		out[i] = r.String()
	}
	return out
}

func TestParse(t *testing.T) {
	tests := []struct {
		name  string
		input string
		want  []string
	}{
		{
			name:  "short docker hub name is qualified",
			input: "rancher/harvester:v1.4.1\n",
			want:  []string{"docker.io/rancher/harvester:v1.4.1"},
		},
		{
			name:  "official image gets library/",
			input: "busybox:1.36\n",
			want:  []string{"docker.io/library/busybox:1.36"},
		},
		{
			name:  "untagged name means latest",
			input: "rancher/harvester\n",
			want:  []string{"docker.io/rancher/harvester:latest"},
		},
		{
			name:  "fully qualified reference is kept",
			input: "registry.suse.com/suse/sles/15.6/virt-launcher:1.3.1\n",
			want:  []string{"registry.suse.com/suse/sles/15.6/virt-launcher:1.3.1"},
		},
		{
			name:  "registry with a port is kept",
			input: "myreg.local:5000/rancher/x:1\n",
			want:  []string{"myreg.local:5000/rancher/x:1"},
		},
		{
			name:  "digest reference gets no tag",
			input: "rancher/x@" + testDigest + "\n",
			want:  []string{"docker.io/rancher/x@" + testDigest},
		},
		{
			name:  "tag and digest are both kept",
			input: "rancher/x:1@" + testDigest + "\n",
			want:  []string{"docker.io/rancher/x:1@" + testDigest},
		},
		{
			name:  "duplicates after normalisation are removed",
			input: "rancher/x:1\ndocker.io/rancher/x:1\nindex.docker.io/rancher/x:1\nrancher/x:1\n",
			want:  []string{"docker.io/rancher/x:1"},
		},
		{
			name:  "untagged and :latest are one image",
			input: "rancher/x\nrancher/x:latest\n",
			want:  []string{"docker.io/rancher/x:latest"},
		},
		{
			name:  "output is sorted",
			input: "registry.suse.com/a:1\nrancher/z:1\nlonghornio/longhorn-engine:v1.7.2\nrancher/a:2\nrancher/a:10\n",
			want: []string{
				"docker.io/longhornio/longhorn-engine:v1.7.2",
				"docker.io/rancher/a:10",
				"docker.io/rancher/a:2",
				"docker.io/rancher/z:1",
				"registry.suse.com/a:1",
			},
		},
		{
			name:  "blank lines, CRLF endings and surrounding spaces are accepted",
			input: "\r\n  rancher/x:1  \r\n\t\r\n\trancher/y:2\t\r\n\n",
			want:  []string{"docker.io/rancher/x:1", "docker.io/rancher/y:2"},
		},
		{
			name:  "last line without newline",
			input: "rancher/x:1\nrancher/y:2",
			want:  []string{"docker.io/rancher/x:1", "docker.io/rancher/y:2"},
		},
		{
			name:  "empty input",
			input: "",
		},
		{
			name:  "only blank lines",
			input: "\n \n\r\n",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := imagelist.Parse(strings.NewReader(tt.input), "test.txt")
			if err != nil {
				t.Fatalf("Parse(): %v", err)
			}
			if s := refStrings(got); !slices.Equal(s, tt.want) {
				t.Errorf("Parse() = %q, want %q", s, tt.want)
			}
		})
	}
}

func TestParseErrors(t *testing.T) {
	long := strings.Repeat("a", 64<<10+1)
	tests := []struct {
		name  string
		input string
		// wantErr are substrings of the error.
		wantErr []string
	}{
		{
			name:    "invalid line fails the whole list",
			input:   "rancher/x:1\nnot a reference\nrancher/y:2\n",
			wantErr: []string{"v1.4.1/image_list_all.txt", "line 2", "not a reference"},
		},
		{
			name:    "line numbers count blank lines",
			input:   "\nrancher/x:1\n\n\r\nrancher/x:1:2\n",
			wantErr: []string{"v1.4.1/image_list_all.txt", "line 5", "rancher/x:1:2"},
		},
		{
			name:    "a line of exactly 4097 bytes is too long",
			input:   "rancher/x:1\n" + strings.Repeat("a", 4097) + "\n",
			wantErr: []string{"line 2", "longer than 4096 bytes"},
		},
		{
			name:    "uppercase repository is invalid",
			input:   "rancher/Harvester:v1.4.1\n",
			wantErr: []string{"line 1", "rancher/Harvester:v1.4.1"},
		},
		{
			name:    "invalid tag",
			input:   "rancher/x:-bad\n",
			wantErr: []string{"line 1"},
		},
		{
			name:    "invalid digest",
			input:   "rancher/x@sha256:abc\n",
			wantErr: []string{"line 1"},
		},
		{
			name:    "line over 64 KiB",
			input:   "rancher/x:1\n\n" + long + "\nrancher/y:2\n",
			wantErr: []string{"v1.4.1/image_list_all.txt", "line 3"},
		},
		{
			name:    "last line over 64 KiB without newline",
			input:   "rancher/x:1\n" + long,
			wantErr: []string{"v1.4.1/image_list_all.txt", "line 2"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := imagelist.Parse(strings.NewReader(tt.input), "v1.4.1/image_list_all.txt")
			if err == nil {
				t.Fatalf("Parse() = %v, want an error", refStrings(got))
			}
			if got != nil {
				t.Errorf("Parse() returned %d references with the error, want none", len(got))
			}
			for _, s := range tt.wantErr {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q does not contain %q", err, s)
				}
			}
		})
	}
}

func FuzzParse(f *testing.F) {
	for _, seed := range []string{
		"rancher/harvester:v1.4.1\n",
		"docker.io/rancher/harvester-upgrade:v1.4.1\r\nregistry.suse.com/suse/sles/15.6/virt-operator:1.3.1\r\n",
		"  longhornio/longhorn-engine:v1.7.2  \n\nrancher/x\n",
		"rancher/x@" + testDigest + "\nrancher/x:1@" + testDigest + "\n",
		"localhost:5000/a/b:c\nindex.docker.io/x\n",
		"rancher/Harvester:v1\n",
		"",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, input string) {
		got, err := imagelist.Parse(strings.NewReader(input), "fuzz")
		if err != nil {
			if got != nil {
				t.Fatalf("Parse() returned references with error %v", err)
			}
			return
		}
		for i, r := range got {
			s := r.String()
			again, err := reference.ParseNormalizedNamed(s)
			if err != nil {
				t.Fatalf("result %q does not parse again: %v", s, err)
			}
			if again.String() != s {
				t.Fatalf("result %q parses again as %q", s, again.String())
			}
			if reference.IsNameOnly(r) {
				t.Fatalf("result %q has neither tag nor digest", s)
			}
			if i > 0 && got[i-1].String() >= s {
				t.Fatalf("results not sorted and unique: %q then %q", got[i-1].String(), s)
			}
		}
	})
}

// An error names the bad line but stays one readable line, however long the
// input or the reference library's own message.
func TestParseErrorStaysShort(t *testing.T) {
	for _, line := range []string{strings.Repeat("A", 1000), strings.Repeat("a", 4096)} {
		_, err := imagelist.Parse(strings.NewReader(line+"\n"), "list.txt")
		if err == nil {
			t.Fatalf("%d-byte line parsed", len(line))
		}
		if !strings.Contains(err.Error(), "list.txt line 1") || strings.Contains(err.Error(), "longer than") {
			t.Errorf("error %q should name the line as not a reference", err)
		}
		if len(err.Error()) > 400 {
			t.Errorf("error for a %d-byte line is %d bytes long", len(line), len(err.Error()))
		}
	}
}

// A list line with control bytes and invalid UTF-8 gives an error that names
// it escaped, never raw: the error ends up in annotations, Events and on
// terminals.
func TestParseErrorEscapesTheLine(t *testing.T) {
	_, err := imagelist.Parse(strings.NewReader("rancher/x:1\n\x00\x01\x02\xff\xfe garbage \x1b[31m\x7f\n"), "list.txt")
	if err == nil {
		t.Fatal("a garbage line parsed")
	}
	msg := err.Error()
	if !strings.Contains(msg, "list.txt line 2") {
		t.Errorf("error %q does not name the line", msg)
	}
	if !utf8.ValidString(msg) {
		t.Fatalf("error %q is not valid UTF-8", msg)
	}
	for _, r := range msg {
		if r < 0x20 || r == 0x7f {
			t.Fatalf("error %q holds the control character %U", msg, r)
		}
	}
}

func TestPrintable(t *testing.T) {
	for in, want := range map[string]string{
		"plain text":     "plain text",
		"tab\there":      `tab\there`,
		"esc\x1b[31mred": `esc\x1b[31mred`,
		"bad \xff utf8":  `bad \xff utf8`,
		"naïve":          "naïve",
		`quote " inside`: `quote " inside`,
	} {
		if got := imagelist.Printable(in); got != want {
			t.Errorf("Printable(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestTruncateKeepsRunesWhole(t *testing.T) {
	s := strings.Repeat("é", 10) // 2 bytes each
	for n := 4; n < len(s); n++ {
		got := imagelist.Truncate(s, n)
		if len(got) > n || !utf8.ValidString(got) || !strings.HasSuffix(got, "...") {
			t.Errorf("Truncate(%d) = %q", n, got)
		}
	}
	if got := imagelist.Truncate("short", 10); got != "short" {
		t.Errorf("Truncate of a short string = %q", got)
	}
}
