// Package devicecache keeps a local, always-fresh copy of what ingest and
// edge need from the device registry: which devices exist, whether they are
// enabled, their groups, and which groups exist. Lookups are map reads, so
// the per-message hot path makes no RPC.
//
// It follows the registry's recipe for an exact cache: open WatchChanges
// from "now", wait for the first response (the stream is live), list every
// device and group, then apply the streamed changes by version. After a
// broken stream it resumes from the last sequence; if the registry no
// longer holds that far back (OUT_OF_RANGE), it loads everything again.
package devicecache

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	registryv1 "github.com/sensorcast/sensorcast/proto/sensorcast/registry/v1"
)

// Device is what the cache keeps of a device: what admission and routing
// need, and what a dashboard lists.
type Device struct {
	ID      string
	Name    string
	Type    string
	Labels  map[string]string // shared, do not modify
	Enabled bool
	Groups  []string // sorted; shared, do not modify
	Version int64
}

// Group is what the cache keeps of a group.
type Group struct {
	ID      string
	Name    string
	Members int // devices in the group
	Version int64
}

// Rule is what the cache keeps of an alert rule.
type Rule struct {
	ID   string
	Name string
	// Target is the room whose devices the rule watches: "device:<id>" or
	// "group:<id>".
	Target    string
	Field     string
	Operator  registryv1.Operator
	Threshold float64
	Severity  registryv1.Severity
	Hold      time.Duration
	Cooldown  time.Duration
	Enabled   bool
	Version   int64
}

// Client is the part of the registry API the cache uses.
type Client interface {
	WatchChanges(ctx context.Context, in *registryv1.WatchChangesRequest, opts ...grpc.CallOption) (grpc.ServerStreamingClient[registryv1.WatchChangesResponse], error)
	ListDevices(ctx context.Context, in *registryv1.ListDevicesRequest, opts ...grpc.CallOption) (*registryv1.ListDevicesResponse, error)
	ListGroups(ctx context.Context, in *registryv1.ListGroupsRequest, opts ...grpc.CallOption) (*registryv1.ListGroupsResponse, error)
	ListAlertRules(ctx context.Context, in *registryv1.ListAlertRulesRequest, opts ...grpc.CallOption) (*registryv1.ListAlertRulesResponse, error)
}

// listPageSize is the page size of the full load: large pages, few round trips.
const listPageSize = 1000

// Cache is a local copy of the registry's devices and groups.
type Cache struct {
	client Client
	logger *slog.Logger

	mu      sync.RWMutex
	devices map[string]Device
	groups  map[string]Group // Members is filled in on the way out
	// members indexes devices by group, for "latest state of a group".
	members map[string]map[string]struct{}
	// listing holds every device in id order, for paging through them; nil
	// when a device changed since it was built (it is rebuilt on the next
	// read, so ingest, which never lists, never builds it). It is replaced,
	// never modified, so a reader keeps it unlocked.
	listing []listed
	// devicesGen counts changes of devices, so that a listing built
	// outside the lock is kept only if no change came meanwhile.
	devicesGen uint64
	rules      map[string]Rule
	// targets indexes enabled rules by their target room.
	targets map[string]map[string]struct{}

	// seq is the last change sequence applied; only Run touches it.
	seq int64
	// loaded is closed once the first full load has been applied.
	loaded   chan struct{}
	loadOnce sync.Once
}

// New returns an empty cache; Run fills it and keeps it fresh.
func New(client Client, logger *slog.Logger) *Cache {
	return &Cache{
		client: client, logger: logger,
		devices: map[string]Device{}, groups: map[string]Group{}, members: map[string]map[string]struct{}{},
		rules: map[string]Rule{}, targets: map[string]map[string]struct{}{},
		loaded: make(chan struct{}),
	}
}

// Lookup returns a device, if it exists.
func (c *Cache) Lookup(id string) (Device, bool) {
	c.mu.RLock()
	d, ok := c.devices[id]
	c.mu.RUnlock()
	return d, ok
}

// GroupExists reports whether a group exists.
func (c *Cache) GroupExists(id string) bool {
	c.mu.RLock()
	_, ok := c.groups[id]
	c.mu.RUnlock()
	return ok
}

// RulesFor returns the enabled alert rules that watch a device: its own and
// those of its groups, sorted by id.
func (c *Cache) RulesFor(deviceID string, groups []string) []Rule {
	c.mu.RLock()
	defer c.mu.RUnlock()
	if len(c.targets) == 0 {
		return nil
	}
	var out []Rule
	add := func(target string) {
		for id := range c.targets[target] {
			out = append(out, c.rules[id])
		}
	}
	add("device:" + deviceID)
	for _, g := range groups {
		add("group:" + g)
	}
	slices.SortFunc(out, func(a, b Rule) int { return strings.Compare(a.ID, b.ID) })
	return out
}

// GroupMembers returns up to limit ids of the devices in a group, sorted.
func (c *Cache) GroupMembers(groupID string, limit int) []string {
	c.mu.RLock()
	ids := firstIDs(c.members[groupID], limit)
	c.mu.RUnlock()
	slices.Sort(ids)
	return ids
}

// DeviceIDs returns up to limit ids of devices, sorted.
func (c *Cache) DeviceIDs(limit int) []string {
	c.mu.RLock()
	ids := firstIDs(c.devices, limit)
	c.mu.RUnlock()
	slices.Sort(ids)
	return ids
}

func firstIDs[V any](m map[string]V, limit int) []string {
	ids := make([]string, 0, min(len(m), limit))
	for id := range m {
		if len(ids) == limit {
			break
		}
		ids = append(ids, id)
	}
	return ids
}

// listed is a device in the listing, with what a search looks at.
type listed struct {
	Device
	search string // lower-case id and name
}

// Devices pages through the devices that match, in id order: up to limit
// of those whose id sorts after after, and how many match in all. A device
// matches when its id or name contains search (in any case; "" matches
// all) and match accepts it. It reads a snapshot, without holding the
// cache's lock.
func (c *Cache) Devices(after string, limit int, search string, match func(Device) bool) (page []Device, total int) {
	search = strings.ToLower(search)
	listing := c.sortedDevices()
	for i := range listing {
		d := &listing[i] // not a copy of each device: this loop reads them all
		if !strings.Contains(d.search, search) || !match(d.Device) {
			continue
		}
		total++
		if d.ID > after && len(page) < limit {
			page = append(page, d.Device)
		}
	}
	return page, total
}

// sortedDevices returns every device in id order, rebuilding the snapshot
// after a change. The devices are copied under the read lock; searching
// keys and sorting happen outside it, since for a large fleet they take
// long enough to stall every Lookup (ingest's per-message check among
// them) behind the write lock.
func (c *Cache) sortedDevices() []listed {
	c.mu.RLock()
	if c.listing != nil {
		defer c.mu.RUnlock()
		return c.listing
	}
	gen := c.devicesGen
	listing := make([]listed, 0, len(c.devices))
	for _, d := range c.devices {
		listing = append(listing, listed{Device: d})
	}
	c.mu.RUnlock()
	for i := range listing {
		listing[i].search = strings.ToLower(listing[i].ID + "\n" + listing[i].Name)
	}
	slices.SortFunc(listing, func(a, b listed) int { return strings.Compare(a.ID, b.ID) })
	c.mu.Lock()
	if c.devicesGen == gen {
		c.listing = listing
	}
	c.mu.Unlock()
	return listing
}

// devicesChanged drops the listing; c.mu is held for writing.
func (c *Cache) devicesChanged() {
	c.listing = nil
	c.devicesGen++
}

// Groups returns every group, in id order, with its member count.
func (c *Cache) Groups() []Group {
	c.mu.RLock()
	out := make([]Group, 0, len(c.groups))
	for id, g := range c.groups {
		g.Members = len(c.members[id])
		out = append(out, g)
	}
	c.mu.RUnlock()
	slices.SortFunc(out, func(a, b Group) int { return strings.Compare(a.ID, b.ID) })
	return out
}

// Loaded is closed once the cache has loaded the registry; it then follows it.
func (c *Cache) Loaded() <-chan struct{} { return c.loaded }

// Ready reports whether the cache has loaded the registry once.
func (c *Cache) Ready() bool {
	select {
	case <-c.loaded:
		return true
	default:
		return false
	}
}

// Run keeps the cache in sync until ctx ends, reconnecting with backoff.
func (c *Cache) Run(ctx context.Context) error {
	backoff := 250 * time.Millisecond
	for {
		err := c.follow(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if status.Code(err) == codes.OutOfRange {
			c.logger.Warn("registry no longer holds our resume point; reloading", "after", c.seq)
			c.seq = 0
		} else {
			c.logger.Warn("registry change stream broke; resuming", "after", c.seq, "err", err)
		}
		// Full jitter, so a registry restart does not get every cache back at once.
		wait := time.Duration(rand.Int64N(int64(backoff))) + 50*time.Millisecond
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(wait):
		}
		backoff = min(2*backoff, 10*time.Second)
	}
}

// follow opens one change stream and applies it until it breaks.
func (c *Cache) follow(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := c.client.WatchChanges(ctx, &registryv1.WatchChangesRequest{ResumeAfter: c.seq})
	if err != nil {
		return fmt.Errorf("watch registry changes: %w", err)
	}
	first, err := stream.Recv()
	if err != nil {
		return fmt.Errorf("watch registry changes: %w", err)
	}
	if c.seq == 0 {
		// The stream is live from first.Sequence on: whatever changes while
		// we list arrives on it and is applied by version afterwards.
		if err := c.load(ctx); err != nil {
			return err
		}
		c.logger.Info("device cache loaded", "devices", c.deviceCount(), "sequence", first.GetSequence())
	}
	c.apply(first)
	c.loadOnce.Do(func() { close(c.loaded) })
	for {
		resp, err := stream.Recv()
		if err != nil {
			if errors.Is(err, io.EOF) {
				return errors.New("registry closed the change stream")
			}
			return err
		}
		c.apply(resp)
	}
}

// load replaces the cache's content with a full listing.
func (c *Cache) load(ctx context.Context) error {
	devices := map[string]Device{}
	for token := ""; ; {
		resp, err := c.client.ListDevices(ctx, &registryv1.ListDevicesRequest{PageSize: listPageSize, PageToken: token})
		if err != nil {
			return fmt.Errorf("list devices: %w", err)
		}
		for _, d := range resp.GetDevices() {
			devices[d.GetId()] = fromProto(d)
		}
		if token = resp.GetNextPageToken(); token == "" {
			break
		}
	}
	groups := map[string]Group{}
	for token := ""; ; {
		resp, err := c.client.ListGroups(ctx, &registryv1.ListGroupsRequest{PageSize: listPageSize, PageToken: token})
		if err != nil {
			return fmt.Errorf("list groups: %w", err)
		}
		for _, g := range resp.GetGroups() {
			groups[g.GetId()] = groupFromProto(g)
		}
		if token = resp.GetNextPageToken(); token == "" {
			break
		}
	}
	rules := map[string]Rule{}
	for token := ""; ; {
		resp, err := c.client.ListAlertRules(ctx, &registryv1.ListAlertRulesRequest{PageSize: listPageSize, PageToken: token})
		if err != nil {
			return fmt.Errorf("list alert rules: %w", err)
		}
		for _, r := range resp.GetAlertRules() {
			rules[r.GetId()] = ruleFromProto(r)
		}
		if token = resp.GetNextPageToken(); token == "" {
			break
		}
	}
	members := map[string]map[string]struct{}{}
	for id, d := range devices {
		indexGroups(members, id, d.Groups)
	}
	targets := map[string]map[string]struct{}{}
	for _, r := range rules {
		indexRule(targets, r)
	}
	c.mu.Lock()
	c.devices, c.groups, c.members = devices, groups, members
	c.devicesChanged()
	c.rules, c.targets = rules, targets
	c.mu.Unlock()
	return nil
}

func indexRule(targets map[string]map[string]struct{}, r Rule) {
	if !r.Enabled {
		return
	}
	if targets[r.Target] == nil {
		targets[r.Target] = map[string]struct{}{}
	}
	targets[r.Target][r.ID] = struct{}{}
}

func unindexRule(targets map[string]map[string]struct{}, r Rule) {
	delete(targets[r.Target], r.ID)
	if len(targets[r.Target]) == 0 {
		delete(targets, r.Target)
	}
}

func indexGroups(members map[string]map[string]struct{}, id string, groups []string) {
	for _, g := range groups {
		if members[g] == nil {
			members[g] = map[string]struct{}{}
		}
		members[g][id] = struct{}{}
	}
}

func unindexGroups(members map[string]map[string]struct{}, id string, groups []string) {
	for _, g := range groups {
		delete(members[g], id)
		if len(members[g]) == 0 {
			delete(members, g)
		}
	}
}

// apply applies streamed changes in order. A change older than what the
// cache holds (the listing already saw it) is skipped.
func (c *Cache) apply(resp *registryv1.WatchChangesResponse) {
	c.mu.Lock()
	for _, ch := range resp.GetChanges() {
		id, v := ch.GetId(), ch.GetVersion()
		switch ch.GetKind() {
		case registryv1.ChangeKind_CHANGE_KIND_DEVICE_CREATED, registryv1.ChangeKind_CHANGE_KIND_DEVICE_UPDATED:
			if cur, ok := c.devices[id]; !ok || cur.Version < v {
				d := fromProto(ch.GetDevice())
				unindexGroups(c.members, id, cur.Groups)
				indexGroups(c.members, id, d.Groups)
				c.devices[id] = d
				c.devicesChanged()
			}
		case registryv1.ChangeKind_CHANGE_KIND_DEVICE_DELETED:
			if cur, ok := c.devices[id]; ok && cur.Version <= v {
				unindexGroups(c.members, id, cur.Groups)
				delete(c.devices, id)
				c.devicesChanged()
			}
		case registryv1.ChangeKind_CHANGE_KIND_GROUP_CREATED, registryv1.ChangeKind_CHANGE_KIND_GROUP_UPDATED:
			if cur, ok := c.groups[id]; !ok || cur.Version < v {
				c.groups[id] = groupFromProto(ch.GetGroup())
			}
		case registryv1.ChangeKind_CHANGE_KIND_GROUP_DELETED:
			if cur, ok := c.groups[id]; ok && cur.Version <= v {
				delete(c.groups, id)
			}
		case registryv1.ChangeKind_CHANGE_KIND_ALERT_RULE_CREATED, registryv1.ChangeKind_CHANGE_KIND_ALERT_RULE_UPDATED:
			if cur, ok := c.rules[id]; !ok || cur.Version < v {
				r := ruleFromProto(ch.GetAlertRule())
				unindexRule(c.targets, cur)
				indexRule(c.targets, r)
				c.rules[id] = r
			}
		case registryv1.ChangeKind_CHANGE_KIND_ALERT_RULE_DELETED:
			if cur, ok := c.rules[id]; ok && cur.Version <= v {
				unindexRule(c.targets, cur)
				delete(c.rules, id)
			}
		}
	}
	c.mu.Unlock()
	if s := resp.GetSequence(); s > c.seq {
		c.seq = s
	}
}

func (c *Cache) deviceCount() int {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return len(c.devices)
}

func ruleFromProto(r *registryv1.AlertRule) Rule {
	target := "device:" + r.GetDeviceId()
	if g := r.GetGroupId(); g != "" {
		target = "group:" + g
	}
	return Rule{
		ID: r.GetId(), Name: r.GetName(), Target: target, Field: r.GetField(),
		Operator: r.GetOperator(), Threshold: r.GetThreshold(), Severity: r.GetSeverity(),
		Hold: r.GetHold().AsDuration(), Cooldown: r.GetCooldown().AsDuration(),
		Enabled: r.GetEnabled(), Version: r.GetVersion(),
	}
}

func fromProto(d *registryv1.Device) Device {
	return Device{
		ID: d.GetId(), Name: d.GetDisplayName(), Type: d.GetType(), Labels: d.GetLabels(),
		Enabled: d.GetEnabled(), Groups: d.GetGroups(), Version: d.GetVersion(),
	}
}

func groupFromProto(g *registryv1.Group) Group {
	return Group{ID: g.GetId(), Name: g.GetDisplayName(), Version: g.GetVersion()}
}
