package load

import (
	"encoding/json"
	"math"
	"math/rand/v2"
	"testing"
)

func TestBucketBoundsHoldTheirValues(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	check := func(v uint64) {
		c, s := bucketOf(v)
		lo, hi := bucketBounds(c, s)
		if v < lo || v > hi {
			t.Fatalf("value %d in bucket (%d,%d) = [%d,%d]", v, c, s, lo, hi)
		}
		if v >= 2*subCount && float64(hi-lo+1)/float64(lo) > 1.0/subCount+1e-12 {
			t.Fatalf("bucket [%d,%d] of %d wider than 1/%d", lo, hi, v, subCount)
		}
	}
	for v := uint64(0); v < 5000; v++ {
		check(v)
	}
	for range 100000 {
		check(r.Uint64() >> r.IntN(64))
	}
	check(math.MaxUint64)
}

func TestHistogramQuantiles(t *testing.T) {
	var h Histogram
	for v := uint64(1); v <= 100000; v++ {
		h.Record(v * 1000) // 1 µs .. 100 ms
	}
	if h.Count() != 100000 || h.Min() != 1000 || h.Max() != 100000000 {
		t.Fatalf("count %d min %d max %d", h.Count(), h.Min(), h.Max())
	}
	for _, q := range []float64{0.5, 0.9, 0.99, 0.999} {
		want := q * 100000 * 1000
		got := float64(h.Quantile(q))
		if got < want || got > want*(1+1.0/subCount)+1000 {
			t.Errorf("q%v = %.0f, want %.0f (+%.1f%%)", q, got, want, 100.0/subCount)
		}
	}
	if h.Quantile(1) != h.Max() || h.Quantile(0) != h.Min() {
		t.Errorf("extremes: q0 %d q1 %d", h.Quantile(0), h.Quantile(1))
	}
	if m := h.Mean(); math.Abs(m-50000.5*1000) > 1 {
		t.Errorf("mean %.1f", m)
	}
	var empty Histogram
	if empty.Quantile(0.99) != 0 || empty.Mean() != 0 {
		t.Error("empty histogram not zero")
	}
}

func TestHistogramMergeAndExport(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	var a, b, all Histogram
	for i := range 20000 {
		v := uint64(r.ExpFloat64() * 2e6)
		all.Record(v)
		if i%3 == 0 {
			a.Record(v)
		} else {
			b.Record(v)
		}
	}
	var m Histogram
	m.Merge(&a)
	m.Merge(&b)
	m.Merge(nil)
	m.Merge(&Histogram{})
	if m.Count() != all.Count() || m.Min() != all.Min() || m.Max() != all.Max() {
		t.Fatalf("merged count/min/max %d/%d/%d, want %d/%d/%d", m.Count(), m.Min(), m.Max(), all.Count(), all.Min(), all.Max())
	}
	for _, q := range []float64{0.1, 0.5, 0.99, 0.9999} {
		if m.Quantile(q) != all.Quantile(q) {
			t.Errorf("q%v merged %d, direct %d", q, m.Quantile(q), all.Quantile(q))
		}
	}
	data, err := json.Marshal(m.Export())
	if err != nil {
		t.Fatal(err)
	}
	var d HistogramData
	if err := json.Unmarshal(data, &d); err != nil {
		t.Fatal(err)
	}
	back := ImportHistogram(d)
	for _, q := range []float64{0.1, 0.5, 0.99, 0.9999} {
		if back.Quantile(q) != all.Quantile(q) {
			t.Errorf("q%v after export %d, want %d", q, back.Quantile(q), all.Quantile(q))
		}
	}
	if back.Mean() != m.Mean() {
		t.Errorf("mean after export %f, want %f", back.Mean(), m.Mean())
	}
}

func TestHistogramNegativeIsZero(t *testing.T) {
	var h Histogram
	h.RecordNanos(-5)
	if h.Count() != 1 || h.Max() != 0 {
		t.Fatalf("count %d max %d", h.Count(), h.Max())
	}
}

func BenchmarkHistogramRecord(b *testing.B) {
	var h Histogram
	for i := range b.N {
		h.Record(uint64(100000 + i%1000000))
	}
}
