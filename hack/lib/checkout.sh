# shellcheck shell=bash
# Sourced by scripts that work on a copy of the checkout.

# checkout::copy SRC DST copies what a commit of SRC would hold into DST:
# in a git work tree the tracked files that still exist plus untracked,
# unignored ones; outside git (an exported tree) every file.
checkout::copy() {
	local src=$1 dst=$2
	if git -C "${src}" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
		(
			cd "${src}"
			git ls-files -z --cached --others --exclude-standard |
				while IFS= read -r -d '' f; do
					[[ -e ${f} || -L ${f} ]] && printf '%s\0' "${f}"
				done |
				xargs -0 --no-run-if-empty cp --parents -t "${dst}"
		)
	else
		cp -a "${src}/." "${dst}"
	fi
}
