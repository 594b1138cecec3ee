package simulator

import (
	"encoding/json"
	"fmt"
)

// ack is a device's acknowledgement of a command (protocol.md section 2).
type ack struct {
	CommandID string         `json:"command_id"`
	Status    string         `json:"status"`
	Result    map[string]any `json:"result,omitempty"`
}

// maxBlinks keeps a playful `blink` from claiming to blink forever.
const maxBlinks = 100

// answer returns the acknowledgements a simulated device sends for a
// command payload, in order: delivered, then succeeded or failed. `blink`
// (params: times, default 3) succeeds; any other command fails with the
// reason. A payload without a command id cannot be answered at all.
func answer(payload []byte) [][]byte {
	var c struct {
		CommandID string         `json:"command_id"`
		Name      string         `json:"name"`
		Params    map[string]any `json:"params"`
	}
	if err := json.Unmarshal(payload, &c); err != nil || c.CommandID == "" {
		return nil
	}
	acks := []ack{{CommandID: c.CommandID, Status: "delivered"}, run(c.CommandID, c.Name, c.Params)}
	out := make([][]byte, 0, len(acks))
	for _, a := range acks {
		b, err := json.Marshal(a)
		if err != nil {
			continue // the maps above hold only JSON values
		}
		out = append(out, b)
	}
	return out
}

// run carries a command out and returns its final acknowledgement.
func run(id, name string, params map[string]any) ack {
	switch name {
	case "blink":
		times := 3.0
		if v, ok := params["times"]; ok {
			n, isNumber := v.(float64)
			if !isNumber || n < 1 || n > maxBlinks || n != float64(int(n)) {
				return ack{CommandID: id, Status: "failed", Result: map[string]any{"reason": fmt.Sprintf(`"times" must be a whole number from 1 to %d`, maxBlinks)}}
			}
			times = n
		}
		return ack{CommandID: id, Status: "succeeded", Result: map[string]any{"blinked": times}}
	default:
		return ack{CommandID: id, Status: "failed", Result: map[string]any{"reason": fmt.Sprintf("unknown command %q; this device knows blink", name)}}
	}
}
