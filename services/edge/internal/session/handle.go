package session

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/sensorcast/sensorcast/services/edge/internal/command"
	"github.com/sensorcast/sensorcast/services/edge/internal/hub"
	"github.com/sensorcast/sensorcast/services/edge/internal/wire"
	"github.com/sensorcast/sensorcast/services/internal/devicecache"
	"github.com/sensorcast/sensorcast/services/internal/room"
	"github.com/sensorcast/sensorcast/services/internal/tracing"
)

// handle answers one client frame. A bad message gets an `error` reply and
// never closes the connection.
func (s *Session) handle(data []byte) {
	now := time.Now()
	msg, err := wire.DecodeClient(data)
	if err != nil {
		s.metrics.ClientFrames.WithLabelValues("invalid").Inc()
		s.replyError(msg.RequestID, err)
		return
	}
	if !s.limiter.Allow(now) {
		s.metrics.ClientFrames.WithLabelValues("rate_limited").Inc()
		s.replyError(msg.RequestID, wire.Errorf(wire.CodeRateLimited, "too many messages; at most %g per second", s.cfg.RateLimit))
		return
	}
	// A client's traceparent makes its request part of its own trace.
	ctx := tracing.ExtractTraceparent(context.Background(), msg.Traceparent)
	switch msg.Type {
	case wire.TypeSubscribe:
		err = s.subscribe(ctx, msg)
	case wire.TypeUnsubscribe:
		err = s.unsubscribe(msg)
	case wire.TypePing:
		s.send(wire.ReplyFrame(wire.TypePong, msg.RequestID, nil, now))
	case wire.TypePresence:
		err = s.presenceOf(msg)
	case wire.TypeCommand:
		err = s.command(ctx, msg, now)
	default:
		s.metrics.ClientFrames.WithLabelValues("unknown").Inc()
		s.replyError(msg.RequestID, wire.Errorf(wire.CodeUnknownType, "unknown message type %q", truncate(msg.Type)))
		return
	}
	s.metrics.ClientFrames.WithLabelValues(msg.Type).Inc()
	if err != nil {
		s.replyError(msg.RequestID, err)
	}
}

func (s *Session) replyError(requestID string, err error) {
	var perr *wire.ProtocolError
	if !errors.As(err, &perr) {
		perr = wire.Errorf(wire.CodeUnavailable, "internal error")
		s.logger.Error("handling client message", "connection_id", s.id, "err", err)
	}
	s.metrics.ClientErrors.WithLabelValues(perr.Code).Inc()
	s.send(wire.ErrorFrame(requestID, perr, time.Now()))
}

func (s *Session) subscribe(ctx context.Context, msg wire.ClientMessage) error {
	var p wire.SubscribePayload
	if err := wire.DecodePayload(msg.Payload, &p); err != nil {
		return err
	}
	if len(p.Rooms) == 0 {
		return wire.Errorf(wire.CodeInvalidPayload, `"rooms" must list at least one room`)
	}
	if len(p.Rooms) > s.cfg.MaxRooms {
		return wire.Errorf(wire.CodeLimitExceeded, "at most %d rooms per subscribe", s.cfg.MaxRooms)
	}
	reply := wire.SubscribedPayload{Rejected: []wire.Rejection{}}
	// Rooms are joined after the reply, so that no room message overtakes
	// it: live ones are held (subscribed on NATS) before it, so that every
	// message published after it arrives; rooms with `since` or `latest`
	// come through a replay.
	var resumes []resumption
	for _, name := range p.Rooms {
		kind, id, rej, ok := s.admit(name, len(resumes))
		if !ok {
			reply.Rejected = append(reply.Rejected, rej)
			continue
		}
		if slices.Contains(s.joined, name) || slices.ContainsFunc(resumes, func(r resumption) bool { return r.room == name }) {
			continue
		}
		since, hasSince := p.Since[name]
		r := resumption{room: name}
		if !hasSince && !p.Latest {
			held, err := s.rooms.Hold(name)
			if err != nil {
				s.logger.Warn("joining room failed", "connection_id", s.id, "room", name, "err", err)
				reply.Rejected = append(reply.Rejected, wire.Rejection{Room: name, Code: wire.CodeUnavailable, Reason: "room is unavailable, try again"})
				continue
			}
			r.held = held
			resumes = append(resumes, r)
			continue
		}
		recovered := false
		if hasSince {
			var err error
			r.from.Seq, recovered, err = s.rooms.ResumePoint(ctx, name, since)
			if err != nil {
				// Joining live would lose what the client missed: it asks
				// again (keeping its since) when it sees this.
				s.logger.Warn("resuming a room is unavailable", "connection_id", s.id, "room", name, "err", err)
				reply.Rejected = append(reply.Rejected, wire.Rejection{Room: name, Code: wire.CodeUnavailable, Reason: "the room's history is unavailable right now; subscribe again with since"})
				continue
			}
			if reply.Recovered == nil {
				reply.Recovered = map[string]bool{}
			}
			reply.Recovered[name] = recovered
		}
		if p.Latest && !recovered {
			// The snapshot's point is fixed before the reply, so whatever
			// is published after the client sees `subscribed` follows it.
			pos, err := s.rooms.Position(ctx, name)
			if err != nil {
				s.logger.Warn("a latest snapshot is unavailable", "connection_id", s.id, "room", name, "err", err)
				reply.Rejected = append(reply.Rejected, wire.Rejection{Room: name, Code: wire.CodeUnavailable, Reason: "the room's latest state is unavailable right now; subscribe again"})
				delete(reply.Recovered, name)
				continue
			}
			r.from.Seq, r.from.Snapshot = pos, true
			r.from.Devices, r.from.AnyDevices = s.latestDevices(kind, id)
		}
		resumes = append(resumes, r)
	}
	reply.Rooms = append([]string{}, s.joined...) // [] rather than null when empty
	for _, r := range resumes {
		reply.Rooms = append(reply.Rooms, r.room)
		// Counted before the reply, so that whoever asks for presence
		// after seeing `subscribed` sees this connection.
		s.presence.Join(r.room, s.claims.Subject)
	}
	s.send(wire.ReplyFrame(wire.TypeSubscribed, msg.RequestID, reply, time.Now()))

	for i, r := range resumes {
		if err := s.resume(ctx, r); errors.Is(err, errClosed) {
			// The session is ending: let go of the rooms not joined.
			s.presence.Leave(r.room, s.claims.Subject)
			for _, rest := range resumes[i+1:] {
				if rest.held != nil {
					rest.held.Release()
				}
				s.presence.Leave(rest.room, s.claims.Subject)
			}
			return nil
		}
	}
	return nil
}

// resumption is a room to join: held, to join live, or through a replay.
type resumption struct {
	room string
	held *hub.Held
	from hub.From
}

// resume joins a held room, or replays a room to the client and then keeps
// it in the room live. If a replay fails (the stream fails midway), joining
// live would silently lose what the client missed, so the connection is
// closed with 1013 instead: the client reconnects and resumes from what it
// did receive.
func (s *Session) resume(ctx context.Context, r resumption) error {
	if r.held != nil {
		if !r.held.Join(s) {
			s.logger.Warn("a room sent more than a join keeps while it was held; closing so the client resumes", "connection_id", s.id, "room", r.room)
			s.Close(CloseTryAgainLater, "room busy while joining, resume later", "replay_failed")
			return errClosed
		}
		s.joined = append(s.joined, r.room)
		return nil
	}
	err := s.rooms.Resume(ctx, r.room, s, r.from)
	if errors.Is(err, errClosed) {
		return err
	}
	if err != nil {
		s.logger.Warn("replaying a room failed; closing so the client resumes later", "connection_id", s.id, "room", r.room, "err", err)
		s.Close(CloseTryAgainLater, "room replay unavailable, resume later", "replay_failed")
		return errClosed
	}
	s.joined = append(s.joined, r.room)
	return nil
}

// latestDevices lists the devices whose latest state a `latest` subscribe
// to a room sends: the device itself, a group's members, or any devices
// for global. With no catalog to say which devices exist, global asks for
// any devices the stream holds, up to the same cap.
func (s *Session) latestDevices(kind, id string) (ids []string, any int) {
	limit := s.cfg.LatestDevices
	switch {
	case limit == 0:
		return nil, 0
	case kind == room.KindDevice:
		return []string{id}, 0
	case s.catalog == nil:
		if kind == room.KindGlobal {
			return nil, limit
		}
		return nil, 0
	case kind == room.KindGroup:
		return s.catalog.GroupMembers(id, limit), 0
	default:
		return s.catalog.DeviceIDs(limit), 0
	}
}

// admit checks that the session may join a room: a valid name, granted by
// the token, existing, and within the room limit (counting extra rooms
// about to be joined).
func (s *Session) admit(name string, extra int) (kind, id string, rej wire.Rejection, ok bool) {
	kind, id, err := room.Parse(name)
	if err != nil {
		return "", "", wire.Rejection{Room: name, Code: wire.CodeInvalidRoom, Reason: err.Error()}, false
	}
	if !s.claims.MayJoin(name) {
		return "", "", wire.Rejection{Room: name, Code: wire.CodeForbidden, Reason: "the token does not grant this room"}, false
	}
	if rej, ok := s.checkExists(name, kind, id); !ok {
		return "", "", rej, false
	}
	if !slices.Contains(s.joined, name) && len(s.joined)+extra >= s.cfg.MaxRooms {
		return "", "", wire.Rejection{Room: name, Code: wire.CodeLimitExceeded, Reason: "connection is in too many rooms"}, false
	}
	return kind, id, wire.Rejection{}, true
}

// checkExists rejects rooms of devices and groups the registry does not know.
func (s *Session) checkExists(name, kind, id string) (wire.Rejection, bool) {
	if s.catalog == nil || kind == room.KindGlobal {
		return wire.Rejection{}, true
	}
	if !s.catalog.Ready() {
		return wire.Rejection{Room: name, Code: wire.CodeUnavailable, Reason: "the device registry is not loaded yet, try again"}, false
	}
	switch kind {
	case room.KindDevice:
		if _, ok := s.catalog.Lookup(id); !ok {
			return wire.Rejection{Room: name, Code: wire.CodeInvalidRoom, Reason: "no such device"}, false
		}
	case room.KindGroup:
		if !s.catalog.GroupExists(id) {
			return wire.Rejection{Room: name, Code: wire.CodeInvalidRoom, Reason: "no such group"}, false
		}
	}
	return wire.Rejection{}, true
}

func (s *Session) unsubscribe(msg wire.ClientMessage) error {
	var p wire.RoomsPayload
	if err := wire.DecodePayload(msg.Payload, &p); err != nil {
		return err
	}
	for _, name := range p.Rooms {
		i := slices.Index(s.joined, name)
		if i < 0 {
			continue
		}
		s.joined = slices.Delete(s.joined, i, i+1)
		s.rooms.Leave(name, s)
		s.presence.Leave(name, s.claims.Subject)
		if i := slices.Index(s.watching, name); i >= 0 {
			s.watching = slices.Delete(s.watching, i, i+1)
			s.watcher.Unwatch(name, s)
		}
	}
	s.send(wire.ReplyFrame(wire.TypeUnsubscribed, msg.RequestID, wire.RoomsPayload{Rooms: append([]string{}, s.joined...)}, time.Now()))
	return nil
}

func (s *Session) presenceOf(msg wire.ClientMessage) error {
	var p wire.PresenceRequest
	if err := wire.DecodePayload(msg.Payload, &p); err != nil {
		return err
	}
	if _, _, err := room.Parse(p.Room); err != nil {
		return wire.Errorf(wire.CodeInvalidRoom, "%s", err.Error())
	}
	if !s.claims.MayJoin(p.Room) {
		return wire.Errorf(wire.CodeForbidden, "the token does not grant room %q", p.Room)
	}
	ctx, cancel := context.WithTimeout(context.Background(), presenceTimeout)
	defer cancel()
	members, err := s.presence.Members(ctx, p.Room)
	if err != nil {
		s.logger.Warn("presence lookup failed", "room", p.Room, "err", err)
		return wire.Errorf(wire.CodeUnavailable, "presence is unavailable, try again")
	}
	if members == nil {
		members = []wire.Member{}
	}
	s.send(wire.ReplyFrame(wire.TypePresence, msg.RequestID, wire.PresencePayload{Room: p.Room, Count: len(members), Members: members}, time.Now()))
	// From this answer on, a client in the room hears who joins and leaves.
	if s.watcher != nil && slices.Contains(s.joined, p.Room) {
		s.watcher.Watch(p.Room, s, members)
		if !slices.Contains(s.watching, p.Room) {
			s.watching = append(s.watching, p.Room)
		}
	}
	return nil
}

// command sends a command to a device for the client, if its token grants
// control of the device (through the device's room or one of its groups').
// Every outcome, refusals included, is a command_result with the request's
// id; malformed payloads get an error.
func (s *Session) command(ctx context.Context, msg wire.ClientMessage, now time.Time) error {
	var p wire.CommandPayload
	if err := wire.DecodePayload(msg.Payload, &p); err != nil {
		return err
	}
	if !room.ValidID(p.DeviceID) {
		return wire.Errorf(wire.CodeInvalidPayload, `"device_id" must be 1–%d characters of A–Z a–z 0–9 _ - :`, room.MaxIDLen)
	}
	if !validCommandName(p.Name) {
		return wire.Errorf(wire.CodeInvalidPayload, `"name" must be 1–64 characters of A–Z a–z 0–9 _ - .`)
	}
	ttl := s.cfg.CommandTimeout
	if p.TimeoutMS != 0 {
		ttl = time.Duration(p.TimeoutMS) * time.Millisecond
		if p.TimeoutMS < 0 || ttl > s.cfg.MaxCommandTimeout {
			return wire.Errorf(wire.CodeInvalidPayload, `"timeout_ms" must be between 1 and %d`, s.cfg.MaxCommandTimeout.Milliseconds())
		}
	}
	reject := func(why string) error {
		s.send(wire.ReplyFrame(wire.TypeCommandResult, msg.RequestID, wire.CommandResultPayload{
			DeviceID: p.DeviceID, Status: "rejected", Result: map[string]any{"reason": why},
		}, now))
		return nil
	}
	if s.commands == nil {
		return reject("commands are not available on this server")
	}
	if why := s.refuseCommand(p.DeviceID); why != "" {
		s.metrics.ClientErrors.WithLabelValues(wire.CodeForbidden).Inc()
		return reject(why)
	}
	if !s.commandLimiter.Allow(now) {
		s.metrics.ClientErrors.WithLabelValues(wire.CodeRateLimited).Inc()
		return reject(fmt.Sprintf("too many commands; at most %g per second", s.cfg.CommandRate))
	}
	s.commands.Send(ctx, s, msg.RequestID, command.Request{UserID: s.claims.Subject, DeviceID: p.DeviceID, Name: p.Name, Params: p.Params, TTL: ttl})
	return nil
}

// refuseCommand checks the token's command grants against the device's
// room and, when the registry is followed, its groups' rooms, and says why
// the device may not be commanded ("" if it may). Only a token whose
// device grant covers an unknown device learns that it is unknown.
func (s *Session) refuseCommand(deviceID string) string {
	const forbidden = "the token does not grant control of this device"
	var d devicecache.Device
	known := false
	if s.catalog != nil {
		d, known = s.catalog.Lookup(deviceID)
	}
	if s.claims.MayCommand(room.Device(deviceID)) {
		if s.catalog != nil && !known {
			return fmt.Sprintf("no such device %q", deviceID)
		}
		return ""
	}
	for _, g := range d.Groups {
		if s.claims.MayCommand(room.Group(g)) {
			return ""
		}
	}
	return forbidden
}

func validCommandName(name string) bool {
	if len(name) == 0 || len(name) > 64 {
		return false
	}
	for _, c := range name {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-' || c == '.') {
			return false
		}
	}
	return true
}

// CommandResult sends a command's status change to the client. It is
// called from the command dispatcher's goroutines, so it queues without
// waiting, like a room message.
func (s *Session) CommandResult(requestID string, r command.Result) {
	p := wire.CommandResultPayload{CommandID: r.CommandID, DeviceID: r.DeviceID, Status: r.Status, Result: r.Result}
	s.Deliver(wire.ReplyFrame(wire.TypeCommandResult, requestID, p, time.Now()))
}

func truncate(s string) string {
	if len(s) > 64 {
		return s[:64] + "…"
	}
	return s
}
