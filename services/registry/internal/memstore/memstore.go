// Package memstore is the embedded device.Store: everything in memory
// behind one lock, nothing persisted. It serves `sensorcast run` and tests,
// where the registry must work without a database server.
package memstore

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/sensorcast/sensorcast/services/registry/internal/device"
)

// DefaultChangeLogCapacity is how many changes a Store keeps by default.
const DefaultChangeLogCapacity = 100_000

// Options configure a Store. The zero value is ready to use.
type Options struct {
	// ChangeLogCapacity is how many of the latest changes Changes can
	// return (default DefaultChangeLogCapacity). Older ones are dropped,
	// and reading from before them is device.ErrChangesExpired.
	ChangeLogCapacity int
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// Store is an in-memory device.Store. Stored objects are never modified in
// place: every write stores a new copy, so the change log can share them.
type Store struct {
	now      func() time.Time
	capacity int

	mu sync.RWMutex
	// devices, groups and rules by id; sorted, groupIDs and ruleIDs hold
	// them in id order, for keyset pages.
	devices  map[string]*device.Device
	sorted   []*device.Device
	groups   map[string]*device.Group
	groupIDs []string
	rules    map[string]*device.AlertRule
	ruleIDs  []string
	// members holds the ids of each existing group's devices; memberLists
	// caches them as sorted devices, built on the first list of a group
	// and dropped when one of its members is written.
	members       map[string]map[string]struct{}
	memberListsMu sync.Mutex
	memberLists   map[string][]*device.Device
	// log holds the retained changes, log[i].Seq == firstSeq+i; seq is the
	// latest Seq.
	log      []device.Change
	firstSeq int64
	seq      int64
	// lastAt is the latest commit time: commit times never go backwards.
	lastAt time.Time
	// gen counts device writes; totals caches list totals per generation.
	gen    uint64
	totals totalsCache
}

var _ device.Store = (*Store)(nil)

// New returns an empty Store.
func New(opts Options) *Store {
	if opts.ChangeLogCapacity <= 0 {
		opts.ChangeLogCapacity = DefaultChangeLogCapacity
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &Store{
		now:         opts.Now,
		capacity:    opts.ChangeLogCapacity,
		devices:     make(map[string]*device.Device),
		groups:      make(map[string]*device.Group),
		rules:       make(map[string]*device.AlertRule),
		members:     make(map[string]map[string]struct{}),
		memberLists: make(map[string][]*device.Device),
		firstSeq:    1,
	}
}

// clock returns the commit time of a write: now, but never before the
// previous commit. Call with mu held for writing.
func (s *Store) clock() time.Time {
	t := device.Timestamp(s.now())
	if t.Before(s.lastAt) {
		t = s.lastAt
	}
	s.lastAt = t
	return t
}

// appendChange adds c to the log with the next Seq, dropping the oldest
// changes beyond capacity. Call with mu held for writing.
func (s *Store) appendChange(c device.Change) {
	s.seq++
	c.Seq = s.seq
	s.log = append(s.log, c)
	// Trim in steps of an eighth of the capacity so appends stay O(1)
	// amortized; between trims up to capacity*9/8 changes are kept.
	if len(s.log) > s.capacity+max(s.capacity/8, 1)-1 {
		drop := len(s.log) - s.capacity
		s.log = slices.Clone(s.log[drop:])
		s.firstSeq += int64(drop)
	}
}

func notFound(kind, id string) error { return fmt.Errorf("%w: %s %q", device.ErrNotFound, kind, id) }

func alreadyExists(kind, id string) error {
	return fmt.Errorf("%w: %s %q", device.ErrAlreadyExists, kind, id)
}

// insertSorted adds id to the sorted ids.
func insertSorted(ids []string, id string) []string {
	i, _ := slices.BinarySearch(ids, id)
	return slices.Insert(ids, i, id)
}

// removeSorted removes id from the sorted ids.
func removeSorted(ids []string, id string) []string {
	if i, found := slices.BinarySearch(ids, id); found {
		return slices.Delete(ids, i, i+1)
	}
	return ids
}

// after returns the index of the first id in sorted ids greater than id.
func after(ids []string, id string) int {
	i, found := slices.BinarySearch(ids, id)
	if found {
		i++
	}
	return i
}

func compareID(d *device.Device, id string) int { return strings.Compare(d.ID, id) }

// deviceAfter returns the index of the first device in sorted devices whose
// id is greater than id.
func deviceAfter(devices []*device.Device, id string) int {
	i, found := slices.BinarySearchFunc(devices, id, compareID)
	if found {
		i++
	}
	return i
}

func (s *Store) missingGroups(prefix string, groups []string) error {
	var missing []string
	for _, g := range groups {
		if _, ok := s.groups[g]; !ok {
			missing = append(missing, g)
		}
	}
	if missing != nil {
		return device.MissingGroupsError(prefix, missing)
	}
	return nil
}

// putDevice stores d in place of old, or as a new device when old is nil,
// and keeps the indexes, except that new devices are only put in s.sorted
// when sort is true: a batch sorts them in once. Call with mu held for
// writing.
func (s *Store) putDevice(old *device.Device, d device.Device, sort bool) *device.Device {
	stored := &d
	if old != nil {
		s.unindexGroups(old)
		i, _ := slices.BinarySearchFunc(s.sorted, d.ID, compareID)
		s.sorted[i] = stored
	} else if sort {
		i, _ := slices.BinarySearchFunc(s.sorted, d.ID, compareID)
		s.sorted = slices.Insert(s.sorted, i, stored)
	}
	for _, g := range d.Groups {
		s.members[g][d.ID] = struct{}{}
		delete(s.memberLists, g)
	}
	s.devices[d.ID] = stored
	s.gen++
	return stored
}

// unindexGroups removes d from its groups' indexes.
func (s *Store) unindexGroups(d *device.Device) {
	for _, g := range d.Groups {
		delete(s.members[g], d.ID)
		delete(s.memberLists, g)
	}
}

// CreateDevice implements device.Store.
func (s *Store) CreateDevice(ctx context.Context, d device.Device) (device.Device, error) {
	if err := ctx.Err(); err != nil {
		return device.Device{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	d, err := device.NewDevice(d, s.now())
	if err != nil {
		return device.Device{}, err
	}
	if _, ok := s.devices[d.ID]; ok {
		return device.Device{}, alreadyExists("device", d.ID)
	}
	if err := s.missingGroups("", d.Groups); err != nil {
		return device.Device{}, err
	}
	d.CreatedAt = s.clock()
	d.UpdatedAt = d.CreatedAt
	stored := s.putDevice(nil, d, true)
	s.appendChange(device.Change{Kind: device.DeviceCreated, ID: d.ID, Version: 1, At: d.UpdatedAt, Device: stored})
	return stored.Clone(), nil
}

// GetDevice implements device.Store.
func (s *Store) GetDevice(ctx context.Context, id string) (device.Device, error) {
	if err := ctx.Err(); err != nil {
		return device.Device{}, err
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	d, ok := s.devices[id]
	if !ok {
		return device.Device{}, notFound("device", id)
	}
	return d.Clone(), nil
}

// UpdateDevice implements device.Store.
func (s *Store) UpdateDevice(ctx context.Context, id string, mutate func(*device.Device) error, expectVersion int64) (device.Device, error) {
	if err := ctx.Err(); err != nil {
		return device.Device{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	cur, ok := s.devices[id]
	if !ok {
		return device.Device{}, notFound("device", id)
	}
	if err := device.CheckVersion("device", id, cur.Version, expectVersion); err != nil {
		return device.Device{}, err
	}
	next, err := device.UpdatedDevice(*cur, mutate, s.now())
	if err != nil {
		return device.Device{}, err
	}
	if err := s.missingGroups("", next.Groups); err != nil {
		return device.Device{}, err
	}
	return s.commitDeviceUpdate(cur, next), nil
}

// commitDeviceUpdate stores next in place of cur with the commit time and
// logs a DeviceUpdated change. Call with mu held for writing.
func (s *Store) commitDeviceUpdate(cur *device.Device, next device.Device) device.Device {
	next.UpdatedAt = s.clock()
	stored := s.putDevice(cur, next, false)
	s.appendChange(device.Change{Kind: device.DeviceUpdated, ID: next.ID, Version: next.Version, At: next.UpdatedAt, Device: stored})
	return stored.Clone()
}

// DeleteDevice implements device.Store.
func (s *Store) DeleteDevice(ctx context.Context, id string, expectVersion int64) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	cur, ok := s.devices[id]
	if !ok {
		return notFound("device", id)
	}
	if err := device.CheckVersion("device", id, cur.Version, expectVersion); err != nil {
		return err
	}
	s.unindexGroups(cur)
	delete(s.devices, id)
	i, _ := slices.BinarySearchFunc(s.sorted, id, compareID)
	s.sorted = slices.Delete(s.sorted, i, i+1)
	s.gen++
	s.appendChange(device.Change{Kind: device.DeviceDeleted, ID: id, Version: cur.Version, At: s.clock()})
	return nil
}

// ListDevices implements device.Store.
func (s *Store) ListDevices(ctx context.Context, q device.DeviceQuery) (device.DevicePage, error) {
	if err := ctx.Err(); err != nil {
		return device.DevicePage{}, err
	}
	cur, err := q.Cursor()
	if err != nil {
		return device.DevicePage{}, err
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	candidates := s.sorted
	if q.Group != "" {
		candidates = s.memberList(q.Group)
	}
	return s.devicePage(candidates, cur, q.Key(), q.Matches), nil
}

// memberList returns a group's members in id order, from the cache when it
// can. The cache has its own lock because readers fill it.
func (s *Store) memberList(group string) []*device.Device {
	s.memberListsMu.Lock()
	defer s.memberListsMu.Unlock()
	if l, ok := s.memberLists[group]; ok {
		return l
	}
	m := s.members[group]
	l := make([]*device.Device, 0, len(m))
	for id := range m {
		l = append(l, s.devices[id])
	}
	slices.SortFunc(l, func(a, b *device.Device) int { return strings.Compare(a.ID, b.ID) })
	if _, ok := s.groups[group]; ok {
		s.memberLists[group] = l
	}
	return l
}

// devicePage returns the page of candidates (sorted by id) that match,
// starting after cur.After. Call with mu held.
func (s *Store) devicePage(candidates []*device.Device, cur device.Cursor, key string, match func(*device.Device) bool) device.DevicePage {
	var page device.DevicePage
	for _, d := range candidates[deviceAfter(candidates, cur.After):] {
		if !match(d) {
			continue
		}
		if len(page.Devices) == cur.Size {
			page.NextPageToken = cur.Next(page.Devices[len(page.Devices)-1].ID)
			break
		}
		page.Devices = append(page.Devices, d.Clone())
	}
	page.TotalSize = s.totals.get(key, s.gen, func() int {
		n := 0
		for _, d := range candidates {
			if match(d) {
				n++
			}
		}
		return n
	})
	return page
}

// UpsertDevices implements device.Store.
func (s *Store) UpsertDevices(ctx context.Context, devices []device.Device) (created, updated int, err error) {
	if err := ctx.Err(); err != nil {
		return 0, 0, err
	}
	batch, err := device.PrepareUpsert(devices)
	if err != nil {
		return 0, 0, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var missing []device.FieldViolation
	for i, d := range batch {
		if err := s.missingGroups(fmt.Sprintf("devices[%d].", i), d.Groups); err != nil {
			missing = append(missing, err.(*device.ValidationError).Violations...)
		}
	}
	if missing != nil {
		return 0, 0, &device.ValidationError{Violations: missing, Cause: device.ErrFailedPrecondition}
	}
	// Nothing can fail from here on.
	now := s.clock()
	var fresh []*device.Device
	for _, in := range batch {
		cur := s.devices[in.ID]
		d := device.UpsertedDevice(cur, in, now)
		kind := device.DeviceUpdated
		if cur == nil {
			kind = device.DeviceCreated
			created++
		} else {
			updated++
		}
		stored := s.putDevice(cur, d, false)
		if cur == nil {
			fresh = append(fresh, stored)
		}
		s.appendChange(device.Change{Kind: kind, ID: d.ID, Version: d.Version, At: d.UpdatedAt, Device: stored})
	}
	// Sort the new devices in once rather than inserting them one by one.
	if len(fresh) > 0 {
		s.sorted = append(s.sorted, fresh...)
		slices.SortFunc(s.sorted, func(a, b *device.Device) int { return strings.Compare(a.ID, b.ID) })
	}
	return created, updated, nil
}

// SetDeviceSecret implements device.Store.
func (s *Store) SetDeviceSecret(ctx context.Context, id string, hash []byte) (device.Device, error) {
	return s.UpdateDevice(ctx, id, func(d *device.Device) error {
		d.SecretHash = hash
		return nil
	}, 0)
}
