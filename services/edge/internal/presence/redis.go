package presence

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/sensorcast/sensorcast/proto/edgestats"
	"github.com/sensorcast/sensorcast/services/edge/internal/wire"
)

// roomKeyPrefix + room: hash of "pod|user" -> that user's connections in the
// room on that pod. The pod keys, which the operator reads, are spelled in
// edgestats.
const roomKeyPrefix = "sensorcast:presence:room:"

// Redis is the Backend shared by every edge pod.
type Redis struct {
	client redis.UniversalClient
}

var _ Backend = (*Redis)(nil)

// NewRedis uses client, which the caller owns and closes.
func NewRedis(client redis.UniversalClient) *Redis { return &Redis{client: client} }

func (r *Redis) Apply(ctx context.Context, pod string, changes []Change) error {
	_, err := r.client.Pipelined(ctx, func(p redis.Pipeliner) error {
		for _, c := range changes {
			if c.Connections > 0 {
				p.HSet(ctx, roomKeyPrefix+c.Room, memberField(pod, c.User), c.Connections)
			} else {
				p.HDel(ctx, roomKeyPrefix+c.Room, memberField(pod, c.User))
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("redis presence apply: %w", err)
	}
	return nil
}

func (r *Redis) Heartbeat(ctx context.Context, pod string, stats PodStats, lease time.Duration) (Beat, error) {
	now := time.Now().UnixMilli()
	key := edgestats.PodKey(pod)
	shedKey := edgestats.ShedKey(pod)
	var exists *redis.IntCmd
	var shed *redis.MapStringStringCmd
	_, err := r.client.TxPipelined(ctx, func(p redis.Pipeliner) error {
		exists = p.Exists(ctx, key)
		// Taken and removed in the same transaction: each request acts once.
		shed = p.HGetAll(ctx, shedKey)
		p.Del(ctx, shedKey)
		p.HSet(ctx, key, edgestats.FieldConnections, stats.Connections, edgestats.FieldRooms, stats.Rooms, edgestats.FieldUpdatedMs, now)
		p.PExpire(ctx, key, lease)
		p.ZAdd(ctx, edgestats.PodsKey, redis.Z{Score: float64(now), Member: pod})
		// Keep the index from growing with pods long gone.
		p.ZRemRangeByScore(ctx, edgestats.PodsKey, "-inf", strconv.FormatInt(now-10*lease.Milliseconds(), 10))
		return nil
	})
	if err != nil {
		return Beat{}, fmt.Errorf("redis presence heartbeat: %w", err)
	}
	return Beat{Held: exists.Val() == 1, Shed: parseShed(shed.Val())}, nil
}

// parseShed reads a shed request; a malformed one is no request.
func parseShed(fields map[string]string) Shed {
	n, err1 := strconv.Atoi(fields[edgestats.FieldShedConnections])
	rate, err2 := strconv.Atoi(fields[edgestats.FieldShedPerSecond])
	if err1 != nil || err2 != nil || n <= 0 || rate <= 0 {
		return Shed{}
	}
	return Shed{Connections: n, PerSecond: rate}
}

func (r *Redis) Members(ctx context.Context, room string) ([]wire.Member, error) {
	key := roomKeyPrefix + room
	fields, err := r.client.HGetAll(ctx, key).Result()
	if err != nil {
		return nil, fmt.Errorf("redis presence members: %w", err)
	}
	// Only pods whose lease is alive count.
	var pods []string
	seen := map[string]bool{}
	for field := range fields {
		pod, _, _ := strings.Cut(field, "|")
		if !seen[pod] {
			seen[pod] = true
			pods = append(pods, pod)
		}
	}
	alive := map[string]bool{}
	if len(pods) > 0 {
		cmds := make([]*redis.IntCmd, len(pods))
		_, err := r.client.Pipelined(ctx, func(p redis.Pipeliner) error {
			for i, pod := range pods {
				cmds[i] = p.Exists(ctx, edgestats.PodKey(pod))
			}
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("redis presence leases: %w", err)
		}
		for i, pod := range pods {
			alive[pod] = cmds[i].Val() == 1
		}
	}
	byUser := map[string]int{}
	var stale []string
	for field, value := range fields {
		pod, user, _ := strings.Cut(field, "|")
		if !alive[pod] {
			stale = append(stale, field)
			continue
		}
		n, err := strconv.Atoi(value)
		if err != nil || n <= 0 {
			continue
		}
		byUser[user] += n
	}
	if len(stale) > 0 {
		// Best effort: a dead pod's members are ignored whether or not this succeeds.
		_ = r.client.HDel(ctx, key, stale...).Err()
	}
	return sortedMembers(byUser), nil
}

func (r *Redis) Forget(ctx context.Context, pod string, rooms []string) error {
	_, err := r.client.Pipelined(ctx, func(p redis.Pipeliner) error {
		for _, room := range rooms {
			// Every field of this pod starts with "pod|"; delete them by
			// prefix in one round trip per room.
			p.Eval(ctx, forgetScript, []string{roomKeyPrefix + room}, pod+"|")
		}
		p.Del(ctx, edgestats.PodKey(pod))
		p.ZRem(ctx, edgestats.PodsKey, pod)
		return nil
	})
	if err != nil {
		return fmt.Errorf("redis presence forget: %w", err)
	}
	return nil
}

// forgetScript deletes the fields of one hash that start with ARGV[1].
const forgetScript = `
local fields = redis.call('HKEYS', KEYS[1])
local prefix = ARGV[1]
for _, f in ipairs(fields) do
  if string.sub(f, 1, #prefix) == prefix then redis.call('HDEL', KEYS[1], f) end
end
return 0`
