package memstore

import (
	"context"
	"slices"

	"github.com/sensorcast/sensorcast/services/registry/internal/device"
)

// groupView returns a copy of a stored group with its member count. Call
// with mu held.
func (s *Store) groupView(g *device.Group) device.Group {
	out := g.Clone()
	out.MemberCount = len(s.members[g.ID])
	return out
}

// CreateGroup implements device.Store.
func (s *Store) CreateGroup(ctx context.Context, g device.Group) (device.Group, error) {
	if err := ctx.Err(); err != nil {
		return device.Group{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	g, err := device.NewGroup(g, s.now())
	if err != nil {
		return device.Group{}, err
	}
	if _, ok := s.groups[g.ID]; ok {
		return device.Group{}, alreadyExists("group", g.ID)
	}
	g.CreatedAt = s.clock()
	g.UpdatedAt = g.CreatedAt
	stored := &g
	s.groups[g.ID] = stored
	s.groupIDs = insertSorted(s.groupIDs, g.ID)
	s.members[g.ID] = make(map[string]struct{})
	s.appendChange(device.Change{Kind: device.GroupCreated, ID: g.ID, Version: 1, At: g.UpdatedAt, Group: stored})
	return g.Clone(), nil
}

// GetGroup implements device.Store.
func (s *Store) GetGroup(ctx context.Context, id string) (device.Group, error) {
	if err := ctx.Err(); err != nil {
		return device.Group{}, err
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	g, ok := s.groups[id]
	if !ok {
		return device.Group{}, notFound("group", id)
	}
	return s.groupView(g), nil
}

// UpdateGroup implements device.Store.
func (s *Store) UpdateGroup(ctx context.Context, id string, mutate func(*device.Group) error, expectVersion int64) (device.Group, error) {
	if err := ctx.Err(); err != nil {
		return device.Group{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	cur, ok := s.groups[id]
	if !ok {
		return device.Group{}, notFound("group", id)
	}
	if err := device.CheckVersion("group", id, cur.Version, expectVersion); err != nil {
		return device.Group{}, err
	}
	next, err := device.UpdatedGroup(s.groupView(cur), mutate, s.now())
	if err != nil {
		return device.Group{}, err
	}
	next.UpdatedAt = s.clock()
	stored := &next
	s.groups[id] = stored
	s.appendChange(device.Change{Kind: device.GroupUpdated, ID: id, Version: next.Version, At: next.UpdatedAt, Group: stored})
	return next.Clone(), nil
}

// DeleteGroup implements device.Store.
func (s *Store) DeleteGroup(ctx context.Context, id string, force bool) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	g, ok := s.groups[id]
	if !ok {
		return notFound("group", id)
	}
	members := s.memberList(id)
	if len(members) > 0 && !force {
		return device.GroupHasMembersError(id, len(members))
	}
	for _, cur := range members {
		next := cur.Clone()
		next.Groups = slices.DeleteFunc(next.Groups, func(g string) bool { return g == id })
		next.Normalize()
		next.Version++
		s.commitDeviceUpdate(cur, next)
	}
	delete(s.groups, id)
	delete(s.members, id)
	delete(s.memberLists, id)
	s.groupIDs = removeSorted(s.groupIDs, id)
	s.appendChange(device.Change{Kind: device.GroupDeleted, ID: id, Version: g.Version, At: s.clock()})
	return nil
}

// ListGroups implements device.Store.
func (s *Store) ListGroups(ctx context.Context, q device.GroupQuery) (device.GroupPage, error) {
	if err := ctx.Err(); err != nil {
		return device.GroupPage{}, err
	}
	cur, err := q.Cursor()
	if err != nil {
		return device.GroupPage{}, err
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	page := device.GroupPage{TotalSize: len(s.groupIDs)}
	for i := after(s.groupIDs, cur.After); i < len(s.groupIDs); i++ {
		if len(page.Groups) == cur.Size {
			page.NextPageToken = cur.Next(page.Groups[len(page.Groups)-1].ID)
			break
		}
		page.Groups = append(page.Groups, s.groupView(s.groups[s.groupIDs[i]]))
	}
	return page, nil
}

// ListGroupMembers implements device.Store.
func (s *Store) ListGroupMembers(ctx context.Context, q device.MembersQuery) (device.DevicePage, error) {
	if err := ctx.Err(); err != nil {
		return device.DevicePage{}, err
	}
	cur, err := q.Cursor()
	if err != nil {
		return device.DevicePage{}, err
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	if _, ok := s.groups[q.GroupID]; !ok {
		return device.DevicePage{}, notFound("group", q.GroupID)
	}
	all := func(*device.Device) bool { return true }
	return s.devicePage(s.memberList(q.GroupID), cur, q.Key(), all), nil
}
