package wire

import (
	"encoding/json"
	"errors"
	"testing"
)

// FuzzDecodeClient feeds arbitrary frames to the inbound decoder: it must
// never panic, must classify every failure with a contract error code, and
// must only accept JSON objects with a type.
func FuzzDecodeClient(f *testing.F) {
	for _, seed := range []string{
		`{"type":"subscribe","request_id":"1","payload":{"rooms":["global","device:a"],"since":{"global":3},"latest":true}}`,
		`{"type":"unsubscribe","payload":{"rooms":["global"]}}`,
		`{"type":"ping"}`,
		`{"type":"presence","payload":{"room":"group:b"}}`,
		`{"type":"command","payload":{"device_id":"d","name":"blink","params":{},"timeout_ms":1000}}`,
		`{"type":5}`, `{}`, `[]`, `null`, `"x"`, `{"type":"ping","payload":null}`, "{\"type\":\"\xff\"}", ``,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := DecodeClient(data)
		if err != nil {
			var perr *ProtocolError
			if !errors.As(err, &perr) || (perr.Code != CodeInvalidJSON && perr.Code != CodeInvalidPayload) {
				t.Fatalf("error without a contract code: %v", err)
			}
			return
		}
		if m.Type == "" || !json.Valid(data) {
			t.Fatalf("accepted %q as %+v", data, m)
		}
		// Payload decoders must not panic on whatever the envelope held.
		var sub SubscribePayload
		_ = DecodePayload(m.Payload, &sub)
		var pr PresenceRequest
		_ = DecodePayload(m.Payload, &pr)
	})
}
