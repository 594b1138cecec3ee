package storetest

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"testing"

	"github.com/sensorcast/sensorcast/services/registry/internal/device"
)

// parallel runs f(i) for i in [0, n) in n goroutines started together and
// returns their errors.
func parallel(n int, f func(i int) error) []error {
	errs := make([]error, n)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			errs[i] = f(i)
		}()
	}
	close(start)
	wg.Wait()
	return errs
}

func testConcurrency(t *testing.T, newStore NewStore) {
	const writers = 16

	run(t, newStore, "of parallel updates expecting the same version exactly one wins and the rest get ErrConflict", func(t *testing.T, s device.Store) {
		mustCreateDevice(t, s, sampleDevice("d1"))
		errs := parallel(writers, func(i int) error {
			_, err := s.UpdateDevice(t.Context(), "d1", func(d *device.Device) error {
				d.Name = fmt.Sprintf("writer %d", i)
				return nil
			}, 1)
			return err
		})
		wins := 0
		winner := -1
		for i, err := range errs {
			switch {
			case err == nil:
				wins++
				winner = i
			case !errors.Is(err, device.ErrConflict):
				t.Errorf("writer %d: %v, want nil or ErrConflict", i, err)
			}
		}
		if wins != 1 {
			t.Fatalf("%d writers won, want exactly 1", wins)
		}
		if got := mustGetDevice(t, s, "d1"); got.Version != 2 || got.Name != fmt.Sprintf("writer %d", winner) {
			t.Fatalf("device = %q version %d, want the winner's (writer %d) at version 2", got.Name, got.Version, winner)
		}
	})

	run(t, newStore, "parallel unconditional updates are all applied, none lost", func(t *testing.T, s device.Store) {
		mustCreateDevice(t, s, device.Device{ID: "counter", Attributes: map[string]string{"n": "0"}})
		errs := parallel(writers, func(int) error {
			for range 5 {
				_, err := s.UpdateDevice(t.Context(), "counter", func(d *device.Device) error {
					n, err := strconv.Atoi(d.Attributes["n"])
					if err != nil {
						return err
					}
					d.Attributes["n"] = strconv.Itoa(n + 1)
					return nil
				}, 0)
				if err != nil {
					return err
				}
			}
			return nil
		})
		if err := errors.Join(errs...); err != nil {
			t.Fatal(err)
		}
		got := mustGetDevice(t, s, "counter")
		if got.Attributes["n"] != strconv.Itoa(writers*5) || got.Version != writers*5+1 {
			t.Fatalf("counter = %s at version %d, want %d at version %d", got.Attributes["n"], got.Version, writers*5, writers*5+1)
		}
	})

	run(t, newStore, "of parallel creates of one id exactly one succeeds and the rest get ErrAlreadyExists", func(t *testing.T, s device.Store) {
		errs := parallel(writers, func(i int) error {
			_, err := s.CreateDevice(t.Context(), device.Device{ID: "d1", Name: fmt.Sprint(i)})
			return err
		})
		wins := 0
		for i, err := range errs {
			switch {
			case err == nil:
				wins++
			case !errors.Is(err, device.ErrAlreadyExists):
				t.Errorf("creator %d: %v, want nil or ErrAlreadyExists", i, err)
			}
		}
		if wins != 1 {
			t.Fatalf("%d creators won, want exactly 1", wins)
		}
		if seq := mustLatestSeq(t, s); seq != 1 {
			t.Fatalf("LatestSeq = %d, want 1", seq)
		}
	})

	run(t, newStore, "parallel writers get strictly increasing gap-free seqs, one per change", func(t *testing.T, s device.Store) {
		mustCreateGroup(t, s, "g")
		const perWriter = 20
		errs := parallel(writers, func(w int) error {
			for i := range perWriter {
				id := fmt.Sprintf("w%02d-%02d", w, i)
				if _, err := s.CreateDevice(t.Context(), device.Device{ID: id, Groups: []string{"g"}}); err != nil {
					return err
				}
				if _, err := s.UpdateDevice(t.Context(), id, func(d *device.Device) error { d.Name = "x"; return nil }, 1); err != nil {
					return err
				}
			}
			return nil
		})
		if err := errors.Join(errs...); err != nil {
			t.Fatal(err)
		}
		changes := allChanges(t, s, 0)
		want := 1 + 2*writers*perWriter
		if len(changes) != want {
			t.Fatalf("%d changes, want %d", len(changes), want)
		}
		versions := map[string][]int64{}
		for i, c := range changes {
			if c.Seq != int64(i)+1 {
				t.Fatalf("change %d has seq %d, want %d", i, c.Seq, i+1)
			}
			versions[c.ID] = append(versions[c.ID], c.Version)
		}
		for id, vs := range versions {
			if id != "g" && !slices.Equal(vs, []int64{1, 2}) {
				t.Errorf("device %s changes have versions %v, want [1 2]", id, vs)
			}
		}
		if memberCount(t, s, "g") != writers*perWriter {
			t.Errorf("member count = %d, want %d", memberCount(t, s, "g"), writers*perWriter)
		}
	})

	run(t, newStore, "a reader following the change log while writers commit sees every change once, in order", func(t *testing.T, s device.Store) {
		const perWriter = 25
		done := make(chan []error)
		go func() {
			done <- parallel(4, func(w int) error {
				for i := range perWriter {
					if _, err := s.CreateDevice(t.Context(), device.Device{ID: fmt.Sprintf("w%d-%02d", w, i)}); err != nil {
						return err
					}
				}
				return nil
			})
		}()
		var after int64
		seen := map[string]bool{}
		for writing := true; writing || after < 4*perWriter; {
			select {
			case errs := <-done:
				if err := errors.Join(errs...); err != nil {
					t.Fatal(err)
				}
				writing = false
			default:
			}
			batch, err := s.Changes(t.Context(), after, 7)
			if err != nil {
				t.Fatalf("Changes(%d): %v", after, err)
			}
			for _, c := range batch {
				if c.Seq != after+1 {
					t.Fatalf("change seq %d after %d: a gap or a repeat", c.Seq, after)
				}
				if seen[c.ID] {
					t.Fatalf("device %s created twice in the log", c.ID)
				}
				seen[c.ID] = true
				after = c.Seq
			}
			if !writing && len(batch) == 0 && after < 4*perWriter {
				t.Fatalf("the log stops at %d, want %d", after, 4*perWriter)
			}
		}
		if len(seen) != 4*perWriter {
			t.Fatalf("saw %d devices created, want %d", len(seen), 4*perWriter)
		}
	})

	run(t, newStore, "deleting a group by force while a device joins it leaves no device in a missing group", func(t *testing.T, s device.Store) {
		for round := range 20 {
			g := fmt.Sprintf("g%02d", round)
			mustCreateGroup(t, s, g)
			id := "d" + g
			mustCreateDevice(t, s, device.Device{ID: id})
			errs := parallel(2, func(i int) error {
				if i == 0 {
					return s.DeleteGroup(t.Context(), g, true)
				}
				_, err := s.UpdateDevice(t.Context(), id, func(d *device.Device) error { d.Groups = []string{g}; return nil }, 0)
				return err
			})
			if errs[0] != nil {
				t.Fatalf("DeleteGroup(force): %v", errs[0])
			}
			if errs[1] != nil && !errors.Is(errs[1], device.ErrFailedPrecondition) {
				t.Fatalf("UpdateDevice: %v, want nil or ErrFailedPrecondition", errs[1])
			}
			if d := mustGetDevice(t, s, id); len(d.Groups) != 0 {
				t.Fatalf("round %d: device is in %v after its group was deleted", round, d.Groups)
			}
		}
	})
}
