package load

import (
	"math"
	"math/bits"
	"sort"
	"strconv"
)

// Histogram is a small log-linear (HDR-like) histogram of non-negative
// integer values (here: nanoseconds). Each power of two is split into
// 2^subBits equal buckets, so a value is known to within 1/2^subBits
// (about 3%) of itself. Buckets are allocated one power of two at a time,
// on first use, so a histogram that only ever sees latencies between 50 µs
// and 5 ms costs a few hundred bytes: one per client goroutine is cheap,
// and recording is a few instructions without locks. Merge adds them up.
//
// The zero value is an empty histogram ready to use. Not safe for
// concurrent use.
type Histogram struct {
	chunks [numChunks]*[subCount]uint64
	count  uint64
	sum    float64
	min    uint64
	max    uint64
}

const (
	subBits   = 5
	subCount  = 1 << subBits
	numChunks = 64 - subBits + 1
)

// bucketOf returns the chunk and sub-bucket of v. Chunk 0 holds 0..subCount-1
// exactly; chunk c ≥ 1 holds [subCount<<(c-1), subCount<<c) in subCount
// buckets of width 1<<(c-1).
func bucketOf(v uint64) (chunk, sub int) {
	n := bits.Len64(v)
	if n <= subBits {
		return 0, int(v)
	}
	shift := n - subBits - 1
	return shift + 1, int(v>>shift) - subCount
}

// bucketBounds returns the smallest and largest value of a bucket.
func bucketBounds(chunk, sub int) (lo, hi uint64) {
	if chunk == 0 {
		return uint64(sub), uint64(sub)
	}
	shift := chunk - 1
	lo = uint64(subCount+sub) << shift
	return lo, lo + (uint64(1) << shift) - 1
}

// Record adds one value.
func (h *Histogram) Record(v uint64) {
	c, s := bucketOf(v)
	ch := h.chunks[c]
	if ch == nil {
		ch = new([subCount]uint64)
		h.chunks[c] = ch
	}
	ch[s]++
	if h.count == 0 || v < h.min {
		h.min = v
	}
	if v > h.max {
		h.max = v
	}
	h.count++
	h.sum += float64(v)
}

// RecordNanos records a duration given in nanoseconds; negative values
// (clock skew between processes) count as zero.
func (h *Histogram) RecordNanos(d int64) {
	if d < 0 {
		d = 0
	}
	h.Record(uint64(d))
}

// Merge adds every value of o to h.
func (h *Histogram) Merge(o *Histogram) {
	if o == nil || o.count == 0 {
		return
	}
	for c, och := range o.chunks {
		if och == nil {
			continue
		}
		ch := h.chunks[c]
		if ch == nil {
			ch = new([subCount]uint64)
			h.chunks[c] = ch
		}
		for s, n := range och {
			ch[s] += n
		}
	}
	if h.count == 0 || o.min < h.min {
		h.min = o.min
	}
	if o.max > h.max {
		h.max = o.max
	}
	h.count += o.count
	h.sum += o.sum
}

// Count is the number of recorded values.
func (h *Histogram) Count() uint64 { return h.count }

// Min and Max are the exact extremes (0 when empty).
func (h *Histogram) Min() uint64 { return h.min }

// Max is the largest recorded value.
func (h *Histogram) Max() uint64 { return h.max }

// Mean is the exact mean (0 when empty).
func (h *Histogram) Mean() float64 {
	if h.count == 0 {
		return 0
	}
	return h.sum / float64(h.count)
}

// Quantile returns a value at quantile q (0..1): the upper bound of the
// bucket holding the ceil(q*count)-th smallest value, clamped to the exact
// min and max. It overstates by at most one bucket width (~3%).
func (h *Histogram) Quantile(q float64) uint64 {
	if h.count == 0 {
		return 0
	}
	if q <= 0 {
		return h.min
	}
	rank := uint64(math.Ceil(q * float64(h.count)))
	if rank < 1 {
		rank = 1
	}
	if rank > h.count {
		rank = h.count
	}
	var seen uint64
	for c, ch := range h.chunks {
		if ch == nil {
			continue
		}
		for s, n := range ch {
			seen += n
			if seen >= rank {
				_, hi := bucketBounds(c, s)
				return min(max(hi, h.min), h.max)
			}
		}
	}
	return h.max
}

// HistogramData is a histogram in a form that survives JSON, so generator
// processes can send theirs to the one that reports.
type HistogramData struct {
	Buckets map[string]uint64 `json:"buckets"` // flat bucket index -> count
	Count   uint64            `json:"count"`
	Sum     float64           `json:"sum"`
	Min     uint64            `json:"min"`
	Max     uint64            `json:"max"`
}

// Export returns h's non-empty buckets.
func (h *Histogram) Export() HistogramData {
	d := HistogramData{Buckets: map[string]uint64{}, Count: h.count, Sum: h.sum, Min: h.min, Max: h.max}
	for c, ch := range h.chunks {
		if ch == nil {
			continue
		}
		for s, n := range ch {
			if n > 0 {
				d.Buckets[strconv.Itoa(c*subCount+s)] = n
			}
		}
	}
	return d
}

// ImportHistogram rebuilds a histogram from Export's data.
func ImportHistogram(d HistogramData) *Histogram {
	h := &Histogram{count: d.Count, sum: d.Sum, min: d.Min, max: d.Max}
	keys := make([]int, 0, len(d.Buckets))
	for k := range d.Buckets {
		if i, err := strconv.Atoi(k); err == nil && i >= 0 && i < numChunks*subCount {
			keys = append(keys, i)
		}
	}
	sort.Ints(keys)
	for _, i := range keys {
		c, s := i/subCount, i%subCount
		if h.chunks[c] == nil {
			h.chunks[c] = new([subCount]uint64)
		}
		h.chunks[c][s] += d.Buckets[strconv.Itoa(i)]
	}
	return h
}
