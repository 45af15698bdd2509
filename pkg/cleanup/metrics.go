package cleanup

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/upgrade-image-cleanup/upgrade-image-cleanup/pkg/remover/report"
)

// Fetch results, the values of the result label of list fetches.
const (
	FetchSuccess  = "success"
	FetchNotFound = "not_found"
	// FetchHTTPError is any other answer than 200 OK or 404.
	FetchHTTPError = "http_error"
	// FetchInvalid is a 200 OK whose body is not an image list.
	FetchInvalid = "invalid"
	// FetchNetworkError is no answer: refused, reset, timed out.
	FetchNetworkError = "network_error"
)

// When a plan was written, the values of the when label of plans written.
const (
	PlannedEarly        = "early"
	PlannedAtCompletion = "completion"
)

// metrics are the cleanup's own Prometheus metrics.
type metrics struct {
	readyToFirstRequest prometheus.Histogram
	listFetches         *prometheus.CounterVec
	imagesPlanned       prometheus.Counter
	plansWritten        *prometheus.CounterVec
	imagesRemoved       prometheus.Counter
	imagesSkipped       *prometheus.CounterVec
	imagesFailed        prometheus.Counter
	nodeRemovals        *prometheus.CounterVec
	bytesReclaimed      prometheus.Counter
	imageFsFreed        prometheus.Counter
}

func newMetrics(reg prometheus.Registerer, upgrades func() []Upgrade) (*metrics, error) {
	m := &metrics{
		readyToFirstRequest: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "upgrade_image_cleanup_ready_to_first_request_seconds",
			Help: "Seconds from the repo's endpoint becoming Ready to the first image list request.",
			// 1 ms to ~65 s: watch delivery is milliseconds, a busy queue seconds.
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 17),
		}),
		listFetches: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "upgrade_image_cleanup_list_fetches_total",
			Help: "Image list requests to the upgrade repo, by result.",
		}, []string{"result"}),
		imagesPlanned: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "upgrade_image_cleanup_images_planned_total",
			Help: "Images written to plans for removal.",
		}),
		plansWritten: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "upgrade_image_cleanup_plans_written_total",
			Help: "Plans written, by when: early (while the upgrade ran) or completion.",
		}, []string{"when"}),
		imagesRemoved: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "upgrade_image_cleanup_images_removed_total",
			Help: "Images removed from nodes (one per node and image).",
		}),
		imagesSkipped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "upgrade_image_cleanup_images_skipped_total",
			Help: "Planned images a node kept, by reason.",
		}, []string{"reason"}),
		imagesFailed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "upgrade_image_cleanup_images_failed_total",
			Help: "Planned images whose removal from a node failed (one per node and image).",
		}),
		nodeRemovals: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "upgrade_image_cleanup_node_removals_total",
			Help: "Nodes' removals in final summaries, by result: succeeded, failed, left (the node left the selector first) or skipped (below the image filesystem threshold).",
		}, []string{"result"}),
		bytesReclaimed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "upgrade_image_cleanup_bytes_reclaimed_total",
			Help: "Bytes of images removed from nodes (the sum of their sizes).",
		}),
		imageFsFreed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "upgrade_image_cleanup_image_fs_freed_bytes_total",
			Help: "Bytes the nodes' image filesystems lost during removals, as measured by the runtime (CRI ImageFsInfo) before and after.",
		}),
	}
	for _, c := range []prometheus.Collector{m.readyToFirstRequest, m.listFetches, m.imagesPlanned, m.plansWritten, m.imagesRemoved, m.imagesSkipped, m.imagesFailed, m.nodeRemovals, m.bytesReclaimed, m.imageFsFreed, stateCollector(upgrades)} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	// Known label values from the start, so a dashboard shows 0, not nothing.
	for _, r := range []string{FetchSuccess, FetchNotFound, FetchHTTPError, FetchInvalid, FetchNetworkError} {
		m.listFetches.WithLabelValues(r)
	}
	for _, w := range []string{PlannedEarly, PlannedAtCompletion} {
		m.plansWritten.WithLabelValues(w)
	}
	for _, r := range []report.Reason{report.ReasonInUse, report.ReasonPinned, report.ReasonStillNeeded, report.ReasonNotPresent} {
		m.imagesSkipped.WithLabelValues(string(r))
	}
	for _, r := range []string{NodeSucceeded, NodeFailed, NodeLeft, NodeSkipped} {
		m.nodeRemovals.WithLabelValues(r)
	}
	return m, nil
}

// fetchResult classifies a FetchList error for the result label.
func fetchResult(err error) string {
	var se *StatusError
	switch {
	case err == nil:
		return FetchSuccess
	case errors.As(err, &se) && se.StatusCode == 404:
		return FetchNotFound
	case errors.As(err, &se):
		return FetchHTTPError
	case errors.Is(err, ErrEmptyList) || errors.As(err, new(invalidList)):
		return FetchInvalid
	default:
		return FetchNetworkError
	}
}

// removed adds a finished removal's totals.
func (m *metrics) removed(s *Summary) {
	addCount(m.imagesRemoved, s.Total.Removed+s.Total.DanglingRemoved)
	addCount(m.imagesFailed, s.Total.Failed)
	for r, n := range s.Outcomes {
		addCount(m.nodeRemovals.WithLabelValues(r), n)
	}
	m.bytesReclaimed.Add(float64(s.Total.BytesReclaimed))
	if s.ImageFs != nil {
		m.imageFsFreed.Add(float64(s.ImageFs.Freed))
	}
	for r, n := range s.Total.Skipped {
		addCount(m.imagesSkipped.WithLabelValues(string(r)), n)
	}
}

// addCount adds n unless it is negative: counts come from pods' statuses,
// and a counter that was asked to decrease panics.
func addCount(c prometheus.Counter, n int) {
	if n > 0 {
		c.Add(float64(n))
	}
}

// upgradesDesc is the gauge of upgrades per cleanup state. It is computed at
// scrape time from the Upgrade cache, so it is never out of step with it.
var upgradesDesc = prometheus.NewDesc("upgrade_image_cleanup_upgrades",
	"Upgrades by cleanup state (state \"\" has none yet).", []string{"state"}, nil)

// upgradeStateDesc is one series per Upgrade, value 1, naming its state
// (and, when Failed, the failed phase): which cleanup an alert is about.
// One series per Upgrade object, whatever its state, so it is bounded by
// the cache; the namespace label is upgrade_namespace, because a scrape
// through the Prometheus Operator sets namespace to the target's own.
var upgradeStateDesc = prometheus.NewDesc("upgrade_image_cleanup_upgrade_state",
	"1 for each Upgrade, labelled with its cleanup state (\"\": none yet) and, when Failed, the phase that failed.",
	[]string{"upgrade_namespace", "upgrade", "state", "failed_phase"}, nil)

type stateCollector func() []Upgrade

func (stateCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- upgradesDesc
	ch <- upgradeStateDesc
}

func (list stateCollector) Collect(ch chan<- prometheus.Metric) {
	counts := map[State]int{StateWaitingForRepo: 0, StatePlanned: 0, StateRemoving: 0, StateSucceeded: 0, StateFailed: 0, StateSkipped: 0}
	for _, u := range list() {
		s := State(u.Annotations[StateAnnotation])
		counts[s]++
		var phase string
		if s == StateFailed {
			phase = u.Annotations[FailedPhaseAnnotation]
		}
		// Annotation values are the API's strings, so valid label values;
		// a value that were not is left out rather than failing the scrape.
		if m, err := prometheus.NewConstMetric(upgradeStateDesc, prometheus.GaugeValue, 1, u.Namespace, u.Name, string(s), phase); err == nil {
			ch <- m
		}
	}
	for s, n := range counts {
		ch <- prometheus.MustNewConstMetric(upgradesDesc, prometheus.GaugeValue, float64(n), string(s))
	}
}
