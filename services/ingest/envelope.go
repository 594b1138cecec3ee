package ingest

import (
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nuid"
	envelopev1 "github.com/sensorcast/sensorcast/proto/sensorcast/envelope/v1"
	"github.com/sensorcast/sensorcast/services/internal/devicemsg"
	"github.com/sensorcast/sensorcast/services/internal/room"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// deviceMessage is an accepted device message, ready to publish.
type deviceMessage struct {
	deviceID string
	kind     devicemsg.Kind
	envelope *envelopev1.Envelope
}

// parse validates a message from topic and wraps it in an envelope with a
// fresh id, ingested now.
func parse(topic string, payload []byte, now time.Time) (deviceMessage, error) {
	deviceID, kind, err := devicemsg.ParseTopic(topic)
	if err != nil {
		return deviceMessage{}, err
	}
	env := &envelopev1.Envelope{Id: nuid.Next(), IngestedAt: timestamppb.New(now)}
	switch kind {
	case devicemsg.KindTelemetry:
		t, err := devicemsg.ParseTelemetry(deviceID, payload, now)
		if err != nil {
			return deviceMessage{deviceID: deviceID}, err
		}
		env.Body = &envelopev1.Envelope_Telemetry{Telemetry: t}
	case devicemsg.KindStatus:
		s, err := devicemsg.ParseStatus(deviceID, payload, now)
		if err != nil {
			return deviceMessage{deviceID: deviceID}, err
		}
		env.Body = &envelopev1.Envelope_DeviceStatus{DeviceStatus: s}
	}
	return deviceMessage{deviceID: deviceID, kind: kind, envelope: env}, nil
}

// natsMsgs encodes the envelope once and returns one message per room it
// belongs to (the device's, each of its groups' and global), all sharing
// those bytes, and the rooms, in the same order.
func (m deviceMessage) natsMsgs(groups []string) ([]*nats.Msg, []string, error) {
	data, err := proto.Marshal(m.envelope)
	if err != nil {
		return nil, nil, fmt.Errorf("marshal envelope of %s: %w", m.deviceID, err)
	}
	kind := envelopev1.KindTelemetry
	if m.kind == devicemsg.KindStatus {
		kind = envelopev1.KindDeviceStatus
	}
	msgs, rooms := roomMsgs(data, m.envelope.GetId(), kind, m.deviceID, groups)
	return msgs, rooms, nil
}

// roomMsgs returns one message of kind per room of a device (its own, each
// of its groups' and global), all sharing data, and the rooms. Each has a
// header of its own, because its de-duplication id (id:room) names its
// room, the same envelope being one message per room to JetStream, and
// because its trace context names its own send span.
func roomMsgs(data []byte, id, kind, deviceID string, groups []string) ([]*nats.Msg, []string) {
	rooms := make([]string, 0, 2+len(groups))
	rooms = append(rooms, room.Device(deviceID))
	for _, g := range groups {
		rooms = append(rooms, room.Group(g))
	}
	rooms = append(rooms, room.Global)
	msgs := make([]*nats.Msg, len(rooms))
	for i, r := range rooms {
		header := make(nats.Header, 3) // the id, traceparent, tracestate
		header.Set(envelopev1.HeaderMsgID, id+":"+r)
		msgs[i] = &nats.Msg{Subject: envelopev1.RoomSubject(r, kind), Header: header, Data: data}
	}
	return msgs, rooms
}
