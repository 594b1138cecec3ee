//go:build unix

package harness

import (
	"net/http"
	"strings"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// Metrics is one scrape of a service's /metrics: its metric families by
// name, as Prometheus' own parser reads them.
type Metrics map[string]*dto.MetricFamily

// Scrape reads url, a /metrics endpoint, in the text exposition format and
// parses it; it fails t if either fails.
func Scrape(t testing.TB, url string) Metrics {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatalf("scrape %s: %v", url, err)
	}
	// Ask for the format the parser reads, whatever else the endpoint offers.
	req.Header.Set("Accept", string(expfmt.NewFormat(expfmt.TypeTextPlain)))
	resp, err := httpClient.Do(req)
	if err != nil {
		t.Fatalf("scrape %s: %v", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("scrape %s: %s", url, resp.Status)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("scrape %s: %v", url, err)
	}
	return families
}

// Sample is one series of a scrape.
type Sample struct {
	Labels map[string]string
	Value  float64
}

// Samples returns the series of name whose labels include labels, given as
// name, value pairs: Samples("sensorcast_ingest_messages_total", "kind",
// "telemetry"). As in PromQL, name_count and name_sum are the count and sum
// of a histogram or summary name. A series not (yet) exported is not there.
func (m Metrics) Samples(name string, labels ...string) []Sample {
	if len(labels)%2 != 0 {
		panic("harness: Samples takes labels as name, value pairs")
	}
	family, read := m.family(name)
	if family == nil {
		return nil
	}
	var samples []Sample
	for _, series := range family.GetMetric() {
		s := Sample{Labels: map[string]string{}, Value: read(series)}
		for _, pair := range series.GetLabel() {
			s.Labels[pair.GetName()] = pair.GetValue()
		}
		if hasLabels(s.Labels, labels) {
			samples = append(samples, s)
		}
	}
	return samples
}

// Value is the sum of the values of Samples(name, labels...), as PromQL's
// sum(name{labels}) would give it; 0 when there is no such series, which is
// what a counter not yet exported stands for.
func (m Metrics) Value(name string, labels ...string) float64 {
	var sum float64
	for _, s := range m.Samples(name, labels...) {
		sum += s.Value
	}
	return sum
}

// family finds the family of series name and how to read a series' value.
func (m Metrics) family(name string) (*dto.MetricFamily, func(*dto.Metric) float64) {
	if f, ok := m[name]; ok {
		return f, func(s *dto.Metric) float64 {
			switch {
			case s.Counter != nil:
				return s.Counter.GetValue()
			case s.Gauge != nil:
				return s.Gauge.GetValue()
			default:
				return s.GetUntyped().GetValue()
			}
		}
	}
	if base, ok := strings.CutSuffix(name, "_count"); ok && m[base] != nil {
		return m[base], func(s *dto.Metric) float64 {
			if s.Histogram != nil {
				return float64(s.Histogram.GetSampleCount())
			}
			return float64(s.GetSummary().GetSampleCount())
		}
	}
	if base, ok := strings.CutSuffix(name, "_sum"); ok && m[base] != nil {
		return m[base], func(s *dto.Metric) float64 {
			if s.Histogram != nil {
				return s.Histogram.GetSampleSum()
			}
			return s.GetSummary().GetSampleSum()
		}
	}
	return nil, nil
}

// hasLabels matches as PromQL's name="value" does: an absent label is "".
func hasLabels(have map[string]string, want []string) bool {
	for i := 0; i < len(want); i += 2 {
		if have[want[i]] != want[i+1] {
			return false
		}
	}
	return true
}
