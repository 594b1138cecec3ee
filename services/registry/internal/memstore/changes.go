package memstore

import (
	"context"
	"fmt"
	"sync"

	"github.com/sensorcast/sensorcast/services/registry/internal/device"
)

// Changes implements device.Store. The Store keeps at least its
// ChangeLogCapacity latest changes.
func (s *Store) Changes(ctx context.Context, afterSeq int64, limit int) ([]device.Change, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	limit, err := device.ResolveChangesLimit(afterSeq, limit)
	if err != nil {
		return nil, err
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	if afterSeq+1 < s.firstSeq {
		return nil, fmt.Errorf("%w: changes after %d were dropped; the oldest kept is %d", device.ErrChangesExpired, afterSeq, s.firstSeq)
	}
	if afterSeq >= s.seq {
		return nil, nil
	}
	from := int(afterSeq + 1 - s.firstSeq)
	to := min(from+limit, len(s.log))
	out := make([]device.Change, to-from)
	for i, c := range s.log[from:to] {
		out[i] = c.Clone()
	}
	return out, nil
}

// LatestSeq implements device.Store.
func (s *Store) LatestSeq(ctx context.Context) (int64, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.seq, nil
}

// totalsCache remembers list totals, so that paging through a large list
// counts the matches once rather than once per page. An entry is valid
// while no device has been written since (the Store's gen).
type totalsCache struct {
	mu      sync.Mutex
	gen     uint64
	entries map[string]int
}

// maxTotals bounds the cache: when full it is emptied.
const maxTotals = 256

// get returns the total of query key at generation gen, calling count on a
// miss.
func (c *totalsCache) get(key string, gen uint64, count func() int) int {
	c.mu.Lock()
	if c.gen != gen || c.entries == nil {
		c.gen, c.entries = gen, make(map[string]int)
	}
	n, ok := c.entries[key]
	c.mu.Unlock()
	if ok {
		return n
	}
	n = count()
	c.mu.Lock()
	if c.gen == gen {
		if len(c.entries) >= maxTotals {
			clear(c.entries)
		}
		c.entries[key] = n
	}
	c.mu.Unlock()
	return n
}
