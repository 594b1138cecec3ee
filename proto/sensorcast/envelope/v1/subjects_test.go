package envelopev1

import "testing"

func TestRoomSubjects(t *testing.T) {
	for _, tc := range []struct {
		room, stored, filter, live string
	}{
		{"global", "sensorcast.room.global.telemetry", "sensorcast.room.global.*", "sensorcast.live.global.*"},
		{"device:sensor-001", "sensorcast.room.device.sensor-001.telemetry", "sensorcast.room.device.sensor-001.*", "sensorcast.live.device.sensor-001.*"},
		{"group:a:b", "sensorcast.room.group.a:b.telemetry", "sensorcast.room.group.a:b.*", "sensorcast.live.group.a:b.*"},
	} {
		if got := RoomSubject(tc.room, KindTelemetry); got != tc.stored {
			t.Errorf("RoomSubject(%q) = %q, want %q", tc.room, got, tc.stored)
		}
		if got := RoomFilter(tc.room); got != tc.filter {
			t.Errorf("RoomFilter(%q) = %q, want %q", tc.room, got, tc.filter)
		}
		if got := LiveFilter(tc.room); got != tc.live {
			t.Errorf("LiveFilter(%q) = %q, want %q", tc.room, got, tc.live)
		}
		if !SubjectInRoom(tc.stored, tc.room) || KindOfSubject(tc.stored) != KindTelemetry {
			t.Errorf("%q is not recognised as a %s message of %q", tc.stored, KindTelemetry, tc.room)
		}
	}
	for _, tc := range []struct{ subject, room string }{
		{"sensorcast.room.device.d1.telemetry", "device:d"},
		{"sensorcast.room.device.d1.telemetry", "group:d1"},
		{"sensorcast.room.device.d1", "device:d1"},
		{"sensorcast.room.device.d1.x.y", "device:d1"},
		{"sensorcast.live.device.d1.telemetry", "device:d1"},
	} {
		if SubjectInRoom(tc.subject, tc.room) {
			t.Errorf("SubjectInRoom(%q, %q) = true", tc.subject, tc.room)
		}
	}
}

func TestSubjectTemplate(t *testing.T) {
	for subject, want := range map[string]string{
		"sensorcast.room.device.sensor-001.telemetry": "sensorcast.room.device.{device_id}.telemetry",
		"sensorcast.live.group.a:b.alert":             "sensorcast.live.group.{group_id}.alert",
		"sensorcast.live.global.device_status":        "sensorcast.live.global.device_status",
		"sensorcast.command.send.d1":                  "sensorcast.command.send.d1",
	} {
		if got := SubjectTemplate(subject); got != want {
			t.Errorf("SubjectTemplate(%q) = %q, want %q", subject, got, want)
		}
	}
}
