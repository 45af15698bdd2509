package workqueue

import (
	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/client-go/util/workqueue"
)

// PrometheusProvider is a client-go workqueue.MetricsProvider that registers
// the queue's metrics (workqueue_depth, _adds_total, _queue_duration_seconds,
// _work_duration_seconds, _unfinished_work_seconds,
// _longest_running_processor_seconds, _retries_total, labelled by queue name)
// on a registry of the caller's, not on a global one.
type PrometheusProvider struct {
	depth                   *prometheus.GaugeVec
	adds                    *prometheus.CounterVec
	latency                 *prometheus.HistogramVec
	workDuration            *prometheus.HistogramVec
	unfinished              *prometheus.GaugeVec
	longestRunningProcessor *prometheus.GaugeVec
	retries                 *prometheus.CounterVec
}

// NewPrometheusProvider registers the workqueue metrics on reg.
func NewPrometheusProvider(reg prometheus.Registerer) (*PrometheusProvider, error) {
	name := []string{"name"}
	// Buckets from 1 ms to ~17 min: a key waits milliseconds when the repo is
	// Ready and a fetch may take seconds.
	buckets := prometheus.ExponentialBuckets(0.001, 4, 10)
	p := &PrometheusProvider{
		depth: prometheus.NewGaugeVec(prometheus.GaugeOpts{Subsystem: "workqueue", Name: "depth",
			Help: "Current depth of the workqueue."}, name),
		adds: prometheus.NewCounterVec(prometheus.CounterOpts{Subsystem: "workqueue", Name: "adds_total",
			Help: "Items added to the workqueue."}, name),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{Subsystem: "workqueue", Name: "queue_duration_seconds",
			Help: "Seconds an item waits in the workqueue before it is processed.", Buckets: buckets}, name),
		workDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Subsystem: "workqueue", Name: "work_duration_seconds",
			Help: "Seconds processing an item takes.", Buckets: buckets}, name),
		unfinished: prometheus.NewGaugeVec(prometheus.GaugeOpts{Subsystem: "workqueue", Name: "unfinished_work_seconds",
			Help: "Seconds of work in progress not yet observed by work_duration."}, name),
		longestRunningProcessor: prometheus.NewGaugeVec(prometheus.GaugeOpts{Subsystem: "workqueue", Name: "longest_running_processor_seconds",
			Help: "Seconds the longest running processor has been running."}, name),
		retries: prometheus.NewCounterVec(prometheus.CounterOpts{Subsystem: "workqueue", Name: "retries_total",
			Help: "Rate-limited retries of the workqueue's items."}, name),
	}
	for _, c := range []prometheus.Collector{p.depth, p.adds, p.latency, p.workDuration, p.unfinished, p.longestRunningProcessor, p.retries} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return p, nil
}

// NewDepthMetric implements workqueue.MetricsProvider.
func (p *PrometheusProvider) NewDepthMetric(n string) workqueue.GaugeMetric {
	return p.depth.WithLabelValues(n)
}

// NewAddsMetric implements workqueue.MetricsProvider.
func (p *PrometheusProvider) NewAddsMetric(n string) workqueue.CounterMetric {
	return p.adds.WithLabelValues(n)
}

// NewLatencyMetric implements workqueue.MetricsProvider.
func (p *PrometheusProvider) NewLatencyMetric(n string) workqueue.HistogramMetric {
	return p.latency.WithLabelValues(n)
}

// NewWorkDurationMetric implements workqueue.MetricsProvider.
func (p *PrometheusProvider) NewWorkDurationMetric(n string) workqueue.HistogramMetric {
	return p.workDuration.WithLabelValues(n)
}

// NewUnfinishedWorkSecondsMetric implements workqueue.MetricsProvider.
func (p *PrometheusProvider) NewUnfinishedWorkSecondsMetric(n string) workqueue.SettableGaugeMetric {
	return p.unfinished.WithLabelValues(n)
}

// NewLongestRunningProcessorSecondsMetric implements workqueue.MetricsProvider.
func (p *PrometheusProvider) NewLongestRunningProcessorSecondsMetric(n string) workqueue.SettableGaugeMetric {
	return p.longestRunningProcessor.WithLabelValues(n)
}

// NewRetriesMetric implements workqueue.MetricsProvider.
func (p *PrometheusProvider) NewRetriesMetric(n string) workqueue.CounterMetric {
	return p.retries.WithLabelValues(n)
}
