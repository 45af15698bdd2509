# Sourced by hack/update-harvester and hack/verify-harvester: Harvester's
# release, read as a Go module, and the go.mod of a module built with it.
#
# A module that builds Harvester's packages must carry the go line and the
# replace directives of Harvester's own go.mod: replace directives apply only
# in the main module, and without them the build is not Harvester's (its
# k8s.io modules are replaced with v0.31.5, some of its dependencies with
# forks). These functions read both from the .mod file that the Go module
# proxy serves for HARVESTER_VERSION, never from a copy.

HARVESTER_MODULE=github.com/harvester/harvester
HARVESTER_VERSION=v1.6.0
# The package whose build must not change when our registration is added.
HARVESTER_UPGRADE_PACKAGE=${HARVESTER_MODULE}/pkg/controller/master/upgrade
# The nested module in examples/ that registers the cleanup in Harvester.
HARVESTER_EXAMPLE_DIR=examples/harvester-v1.6
HARVESTER_EXAMPLE_MODULE=github.com/upgrade-image-cleanup/upgrade-image-cleanup/${HARVESTER_EXAMPLE_DIR}
OUR_MODULE=github.com/upgrade-image-cleanup/upgrade-image-cleanup

# Only these scripts' go commands see these settings.
#  -mod=mod: the go commands may add the requirements and checksums a
#   build needs; the scripts check afterwards what changed.
#  GONOSUMDB: two of Harvester v1.6.0's dependencies are missing from the
#   checksum database (sum.golang.org answers 404 for
#   github.com/rancher/steve v0.5.6 and github.com/rancher/helm/v3
#   v3.15.1-rancher2, Harvester's fork of helm); every other module is
#   verified as usual.
#  GOTOOLCHAIN=local: build with the Go installed here (newer than
#   Harvester's go line), never download another.
export GOFLAGS="${GOFLAGS:+${GOFLAGS} }-mod=mod"
export GONOSUMDB="${GONOSUMDB:+${GONOSUMDB},}github.com/rancher/steve,github.com/rancher/helm"
export GOTOOLCHAIN=local
export GOWORK=off

# harvester::mod_file prints the path of Harvester's go.mod as the module
# proxy serves it (the .mod file that `go mod download -json` reports).
harvester::mod_file() {
	local json
	json=$(cd / && go mod download -json "${HARVESTER_MODULE}@${HARVESTER_VERSION}")
	sed -n 's/^\t"GoMod": "\(.*\)",$/\1/p' <<<"${json}"
}

# harvester::go_line FILE prints the go and toolchain lines of a go.mod
# file, one per line ("go 1.24.2"; "toolchain ..." only when there is one).
harvester::go_line() {
	go mod edit -json "$1" | sed -n \
		-e 's/^\t"Go": "\(.*\)",$/go \1/p' \
		-e 's/^\t"Toolchain": "\(.*\)",$/toolchain \1/p'
}

# harvester::replaces FILE prints the replace directives of a go.mod file,
# one per line, as `go mod edit` flags: -replace=old[@v]=new[@v]. It reads
# `go mod edit -json`, so the form is the same whatever the file's layout.
harvester::replaces() {
	go mod edit -json "$1" | awk '
		/^\t"Replace": \[/ { on = 1; next }
		on && /^\t\]/ { on = 0 }
		!on { next }
		/"Old": \{/ { side = "old"; op = ""; ov = "" }
		/"New": \{/ { side = "new"; np = ""; nv = "" }
		/"Path":/ { v = $2; gsub(/[",]/, "", v); if (side == "old") op = v; else np = v }
		/"Version":/ { v = $2; gsub(/[",]/, "", v); if (side == "old") ov = v; else nv = v }
		/^\t\t\}/ { print "-replace=" op (ov == "" ? "" : "@" ov) "=" np (nv == "" ? "" : "@" nv) }
	' | sort
}

# harvester::write_go_mod DIR MODULE HARVESTER_MOD writes DIR/go.mod: module
# MODULE with the go line and every replace directive of HARVESTER_MOD (the
# file harvester::mod_file names), requiring Harvester's release and
# nothing else.
harvester::write_go_mod() {
	local dir=$1 module=$2 harvester_mod=$3 go_version
	local -a replaces
	go_version=$(go mod edit -json "${harvester_mod}" | sed -n 's/^\t"Go": "\(.*\)",$/\1/p')
	mapfile -t replaces < <(harvester::replaces "${harvester_mod}")
	printf '// Written by hack/update-harvester from %s@%s'"'"'s go.mod: its go line\n// and replace directives. Do not edit; run hack/update-harvester.\n\nmodule %s\n' \
		"${HARVESTER_MODULE}" "${HARVESTER_VERSION}" "${module}" >"${dir}/go.mod"
	(cd "${dir}" && go mod edit -go="${go_version}" \
		-require="${HARVESTER_MODULE}@${HARVESTER_VERSION}" "${replaces[@]}")
}

# harvester::module_versions PACKAGE, run in a module, prints the modules
# PACKAGE builds with, one per line: the module path and the version whose
# code is compiled: the replacement's when a replace directive applies
# (prefixed with its path when that differs), since the version a
# replaced module is required at is never built.
harvester::module_versions() {
	go list -deps -f '{{with .Module}}{{.Path}} {{with .Replace}}{{if ne .Path $.Module.Path}}{{.Path}}@{{end}}{{.Version}}{{else}}{{.Version}}{{end}}{{end}}' "$1" |
		sed '/^$/d' | sort -u
}

# harvester::module_graph, run in a module, prints every module of its
# graph with the version selected, one per line: the replacement's when a
# replace directive applies, as harvester::module_versions. Modules the
# proxy does not serve (Harvester requires a few) are listed with -e.
harvester::module_graph() {
	go list -m -e -f '{{.Path}} {{with .Replace}}{{if ne .Path $.Path}}{{.Path}}@{{end}}{{.Version}}{{else}}{{.Version}}{{end}}' all |
		sort -u
}
