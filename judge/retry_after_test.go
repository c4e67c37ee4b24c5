package judge

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// TestRetryAfterIsCapped: an endpoint answering 503 with Retry-After: 86400
// must not make the client sleep a day; it waits its own longest wait,
// says so, and retries.
func TestRetryAfterIsCapped(t *testing.T) {
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if calls.Add(1) == 1 {
			w.Header().Set("Retry-After", "86400")
			http.Error(w, "overloaded", http.StatusServiceUnavailable)
			return
		}
		w.Write([]byte(`{"choices": [{"message": {"role": "assistant", "content": "m"}}]}`))
	}))
	defer srv.Close()
	var notes []string
	c := &Client{URL: srv.URL, Model: "judge", MaxRetries: 2, Backoff: time.Millisecond, MaxBackoff: 20 * time.Millisecond,
		Note: func(s string) { notes = append(notes, s) }}
	// The test's own bound: far below a day, far above the client's wait.
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	got, err := c.Complete(ctx, []Message{{Role: "user", Content: "q"}})
	if err != nil || got.Text != "m" {
		t.Fatalf("got %q, %v", got.Text, err)
	}
	if len(notes) != 1 || !strings.Contains(notes[0], "asked to wait 24h0m0s before retrying; waiting 20ms instead") {
		t.Fatalf("notes %q", notes)
	}
}

func TestMaxWait(t *testing.T) {
	for _, c := range []struct {
		c    Client
		want time.Duration
	}{
		{Client{}, defaultMaxWait},
		{Client{Timeout: 2 * time.Minute, MaxBackoff: time.Second}, 2 * time.Minute},
		{Client{MaxBackoff: 30 * time.Second}, 30 * time.Second},
		{Client{Backoff: 3 * time.Second}, 3 * time.Second},
	} {
		if got := c.c.maxWait(); got != c.want {
			t.Errorf("%+v: maxWait %v, want %v", c.c, got, c.want)
		}
	}
}
