package imagelist

// sortKeyed sorts refs by key: a multikey quicksort (Bentley and Sedgewick),
// which partitions on one byte at a time and so reads the long prefixes
// that a list's references share (docker.io/rancher/mirrored-...) once per
// partition rather than once per comparison, as a comparison sort does.
// Equal keys end up next to each other in no particular order.
func sortKeyed(refs []keyedRef) { sortKeyedFrom(refs, 0) }

// sortKeyedFrom sorts refs whose keys all share their first depth bytes.
func sortKeyedFrom(refs []keyedRef, depth int) {
	for len(refs) > 12 {
		pivot := median(byteAt(refs[0].key, depth), byteAt(refs[len(refs)/2].key, depth), byteAt(refs[len(refs)-1].key, depth))
		// refs[:lt] < pivot, refs[lt:i] == pivot, refs[gt:] > pivot.
		lt, i, gt := 0, 0, len(refs)
		for i < gt {
			switch c := byteAt(refs[i].key, depth); {
			case c < pivot:
				refs[lt], refs[i] = refs[i], refs[lt]
				lt++
				i++
			case c > pivot:
				gt--
				refs[i], refs[gt] = refs[gt], refs[i]
			default:
				i++
			}
		}
		sortKeyedFrom(refs[:lt], depth)
		sortKeyedFrom(refs[gt:], depth)
		if pivot < 0 { // the keys in the middle all end here: equal
			return
		}
		refs, depth = refs[lt:gt], depth+1
	}
	for i := 1; i < len(refs); i++ {
		for j := i; j > 0 && refs[j].key[depth:] < refs[j-1].key[depth:]; j-- {
			refs[j], refs[j-1] = refs[j-1], refs[j]
		}
	}
}

// byteAt is s[i], or -1 past its end, which sorts a key before its
// extensions.
func byteAt(s string, i int) int {
	if i < len(s) {
		return int(s[i])
	}
	return -1
}

func median(a, b, c int) int {
	if a > b {
		a, b = b, a
	}
	if b > c {
		b = c
	}
	return max(a, b)
}
