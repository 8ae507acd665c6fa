package telemetry

import (
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// The hot-path metrics are not prometheus vectors: WithLabelValues hashes
// the values and takes a lock on every call. A table instead holds one
// atomic cell per combination of label values, laid out row-major over the
// label lists, so an observation is an index and an atomic add. The table
// is a prometheus.Collector that turns its cells into series only when
// scraped.
//
// Tables with many combinations (route × method × class × platform is
// 1,440) export only the cells that were ever touched, so a scrape does not
// carry a thousand zeros; small ones with a fixed meaning export every cell,
// so rate() and alerts see a 0 before the first event.

// grid is the label lists of a table and the row-major indexing over them.
type grid struct {
	names  []string
	values [][]string
	size   int
}

func newGrid(names []string, values ...[]string) grid {
	if len(names) != len(values) {
		panic("telemetry: label names and value lists differ in length")
	}
	size := 1
	for _, v := range values {
		size *= len(v)
	}
	return grid{names: names, values: values, size: size}
}

// labelsOf writes the label values of cell i into lv.
func (g grid) labelsOf(i int, lv []string) {
	for d := len(g.values) - 1; d >= 0; d-- {
		n := len(g.values[d])
		lv[d] = g.values[d][i%n]
		i /= n
	}
}

// counterTable is a counter family over a grid.
type counterTable struct {
	grid
	desc  *prometheus.Desc
	cells []atomic.Uint64
	zeros bool
	// zeroWhen, when zeros is off, picks the cells exported at 0 too:
	// those that can move, so that increase() sees their first count.
	zeroWhen func(lv []string) bool
}

func newCounterTable(name, help string, zeros bool, g grid) *counterTable {
	return &counterTable{
		grid:  g,
		desc:  prometheus.NewDesc(name, help, g.names, nil),
		cells: make([]atomic.Uint64, g.size),
		zeros: zeros,
	}
}

func (t *counterTable) add(cell int, n uint64) { t.cells[cell].Add(n) }

func (t *counterTable) Describe(ch chan<- *prometheus.Desc) { ch <- t.desc }

func (t *counterTable) Collect(ch chan<- prometheus.Metric) {
	lv := make([]string, len(t.names))
	for i := range t.cells {
		v := t.cells[i].Load()
		if v == 0 && !t.zeros && t.zeroWhen == nil {
			continue
		}
		t.labelsOf(i, lv)
		if v == 0 && !t.zeros && !t.zeroWhen(lv) {
			continue
		}
		ch <- prometheus.MustNewConstMetric(t.desc, prometheus.CounterValue, float64(v), lv...)
	}
}

// histogramTable is a histogram family of durations over a grid. Each cell
// has one atomic count per bucket (the last is +Inf) and the sum in
// nanoseconds, so an observation is two atomic adds. A scrape that races an
// observation may see its bucket but not yet its sum; prometheus's own
// histogram goes to lengths to avoid that, and for latency it does not
// matter.
type histogramTable struct {
	grid
	desc   *prometheus.Desc
	bounds []time.Duration // upper bounds (le), ascending
	upper  []float64       // the same in seconds
	counts []atomic.Uint64 // size × (len(bounds)+1)
	sums   []atomic.Uint64 // nanoseconds
	zeros  bool
}

func newHistogramTable(name, help string, zeros bool, bounds []time.Duration, g grid) *histogramTable {
	upper := make([]float64, len(bounds))
	for i, b := range bounds {
		if i > 0 && b <= bounds[i-1] {
			panic("telemetry: histogram bounds must ascend")
		}
		upper[i] = b.Seconds()
	}
	return &histogramTable{
		grid:   g,
		desc:   prometheus.NewDesc(name, help, g.names, nil),
		bounds: bounds,
		upper:  upper,
		counts: make([]atomic.Uint64, g.size*(len(bounds)+1)),
		sums:   make([]atomic.Uint64, g.size),
		zeros:  zeros,
	}
}

func (t *histogramTable) observe(cell int, d time.Duration) {
	if d < 0 {
		d = 0
	}
	// Linear: most observations land in the first few buckets, and the
	// list is short.
	b := 0
	for b < len(t.bounds) && d > t.bounds[b] {
		b++
	}
	t.counts[cell*(len(t.bounds)+1)+b].Add(1)
	t.sums[cell].Add(uint64(d))
}

func (t *histogramTable) Describe(ch chan<- *prometheus.Desc) { ch <- t.desc }

func (t *histogramTable) Collect(ch chan<- prometheus.Metric) {
	lv := make([]string, len(t.names))
	nb := len(t.bounds) + 1
	for i := range t.sums {
		row := t.counts[i*nb : (i+1)*nb]
		var total uint64
		cumulative := make(map[float64]uint64, len(t.bounds))
		for b := range row {
			total += row[b].Load()
			if b < len(t.upper) {
				cumulative[t.upper[b]] = total
			}
		}
		if total == 0 && !t.zeros {
			continue
		}
		t.labelsOf(i, lv)
		sum := float64(t.sums[i].Load()) / float64(time.Second)
		ch <- prometheus.MustNewConstHistogram(t.desc, total, sum, cumulative, lv...)
	}
}
