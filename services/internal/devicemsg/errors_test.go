package devicemsg_test

import (
	"errors"
	"fmt"
	"regexp"
	"testing"

	"github.com/sensorcast/sensorcast/services/internal/devicemsg"
)

func TestReasonOfUnwrapsAndDefaults(t *testing.T) {
	_, _, err := devicemsg.ParseTopic("nope")
	wrapped := fmt.Errorf("handling message: %w", err)
	if got := devicemsg.ReasonOf(wrapped); got != devicemsg.ReasonInvalidTopic {
		t.Errorf("ReasonOf(wrapped) = %q, want %q", got, devicemsg.ReasonInvalidTopic)
	}
	if got := devicemsg.ReasonOf(errors.New("other")); got != devicemsg.ReasonUnknown {
		t.Errorf("ReasonOf(other) = %q, want %q", got, devicemsg.ReasonUnknown)
	}
}

func TestReasonsAreLabelSafe(t *testing.T) {
	label := regexp.MustCompile(`^[a-z][a-z_]*$`)
	seen := map[devicemsg.Reason]bool{}
	for _, r := range devicemsg.Reasons() {
		if !label.MatchString(string(r)) {
			t.Errorf("reason %q is not snake_case", r)
		}
		if seen[r] {
			t.Errorf("reason %q listed twice", r)
		}
		seen[r] = true
	}
}
