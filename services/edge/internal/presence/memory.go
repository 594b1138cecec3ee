package presence

import (
	"context"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/sensorcast/sensorcast/services/edge/internal/wire"
)

// Memory is a Backend for a single process (`sensorcast run`, tests).
type Memory struct {
	mu    sync.Mutex
	rooms map[string]map[string]int // room -> pod|user -> connections
	pods  map[string]PodStats
}

var _ Backend = (*Memory)(nil)

// NewMemory returns an empty in-process backend.
func NewMemory() *Memory {
	return &Memory{rooms: map[string]map[string]int{}, pods: map[string]PodStats{}}
}

func (m *Memory) Apply(_ context.Context, pod string, changes []Change) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, c := range changes {
		users := m.rooms[c.Room]
		if users == nil {
			users = map[string]int{}
			m.rooms[c.Room] = users
		}
		field := memberField(pod, c.User)
		if c.Connections > 0 {
			users[field] = c.Connections
		} else {
			delete(users, field)
			if len(users) == 0 {
				delete(m.rooms, c.Room)
			}
		}
	}
	return nil
}

// Heartbeat never brings a shed request: one process is one pod, and there
// is nowhere to move its connections to.
func (m *Memory) Heartbeat(_ context.Context, pod string, stats PodStats, _ time.Duration) (Beat, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	_, held := m.pods[pod]
	m.pods[pod] = stats
	return Beat{Held: held}, nil
}

func (m *Memory) Members(_ context.Context, room string) ([]wire.Member, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	byUser := map[string]int{}
	for field, n := range m.rooms[room] {
		_, user, _ := strings.Cut(field, "|")
		byUser[user] += n
	}
	return sortedMembers(byUser), nil
}

func (m *Memory) Forget(_ context.Context, pod string, rooms []string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, r := range rooms {
		for field := range m.rooms[r] {
			if strings.HasPrefix(field, pod+"|") {
				delete(m.rooms[r], field)
			}
		}
		if len(m.rooms[r]) == 0 {
			delete(m.rooms, r)
		}
	}
	delete(m.pods, pod)
	return nil
}

// memberField names one pod's count of one user. Pod names are DNS labels
// and cannot hold "|", so the first "|" splits them.
func memberField(pod, user string) string { return pod + "|" + user }

func sortedMembers(byUser map[string]int) []wire.Member {
	members := make([]wire.Member, 0, len(byUser))
	for u, n := range byUser {
		members = append(members, wire.Member{UserID: u, Connections: n})
	}
	slices.SortFunc(members, func(a, b wire.Member) int { return strings.Compare(a.UserID, b.UserID) })
	return members
}
