package simulator

import (
	"encoding/json"
	"math"
	"math/rand/v2"
	"time"
)

// sensors is the state of one device's sensors. Values move by small
// random steps around a per-device baseline, so charts look like a real
// room rather than noise.
type sensors struct {
	rng *rand.Rand

	tempBase, temp float64 // °C, around 20–30
	humBase, hum   float64 // %, around 40–70
	battery        float64 // %, drains slowly, then is "replaced"
	rssiBase       float64 // dBm
	doorOpen       bool
	site           string
}

func newSensors(n int) *sensors {
	rng := rand.New(rand.NewPCG(uint64(n), 0x5e4504ca57))
	s := &sensors{
		rng:      rng,
		tempBase: 20 + rng.Float64()*10,
		humBase:  40 + rng.Float64()*30,
		battery:  70 + rng.Float64()*30,
		rssiBase: -45 - rng.Float64()*40,
		site:     siteOf(n),
	}
	s.temp, s.hum = s.tempBase, s.humBase
	return s
}

// step moves every sensor by one reading.
func (s *sensors) step() {
	// A random walk pulled back toward the baseline stays in range without
	// hard edges.
	s.temp += s.rng.NormFloat64()*0.15 + (s.tempBase-s.temp)*0.05
	s.hum += s.rng.NormFloat64()*0.4 + (s.humBase-s.hum)*0.05
	s.temp = min(max(s.temp, 15), 35)
	s.hum = min(max(s.hum, 20), 90)
	s.battery -= 0.005 + s.rng.Float64()*0.02
	if s.battery <= 0 {
		s.battery = 100
	}
	if s.rng.Float64() < 0.02 {
		s.doorOpen = !s.doorOpen
	}
}

// telemetryPayload is the contract's telemetry message.
type telemetryPayload struct {
	Fields    telemetryFields   `json:"fields"`
	Tags      map[string]string `json:"tags"`
	Timestamp string            `json:"timestamp"`
}

type telemetryFields struct {
	Temperature float64 `json:"temperature"`
	Humidity    float64 `json:"humidity"`
	Battery     float64 `json:"battery"`
	RSSI        int     `json:"rssi"`
	DoorOpen    bool    `json:"door_open"`
}

// reading steps the sensors and returns the telemetry payload sent at now.
func (s *sensors) reading(now time.Time) ([]byte, error) {
	s.step()
	p := telemetryPayload{
		Fields: telemetryFields{
			Temperature: round(s.temp, 2),
			Humidity:    round(s.hum, 1),
			Battery:     round(s.battery, 1),
			RSSI:        int(math.Round(s.rssiBase + s.rng.NormFloat64()*3)),
			DoorOpen:    s.doorOpen,
		},
		Tags:      map[string]string{"site": s.site, "model": Model},
		Timestamp: now.UTC().Format("2006-01-02T15:04:05.000Z07:00"),
	}
	return json.Marshal(p)
}

func round(v float64, digits int) float64 {
	p := math.Pow10(digits)
	return math.Round(v*p) / p
}

// Status payloads of the contract.
const (
	onlinePayload  = `{"status":"online"}`
	offlinePayload = `{"status":"offline"}`
)
