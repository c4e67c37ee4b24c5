package judge

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Client calls an OpenAI-compatible chat completions endpoint.
type Client struct {
	// URL is the endpoint: a server root ("http://127.0.0.1:8000"), its
	// "/v1" base, or the full ".../chat/completions" address.
	URL string
	// Model is the judge model's name, sent as "model".
	Model string
	// APIKey, when not empty, is sent as a bearer token. It never appears
	// in errors.
	APIKey string
	// HTTP is the client used; nil means http.DefaultClient.
	HTTP *http.Client
	// MaxRetries is how many times a failed request is retried: on 408,
	// 429 and 5xx answers, on network errors and on timeouts.
	MaxRetries int
	// Backoff is the wait before the first retry; it doubles each retry
	// (with ±25% jitter) up to MaxBackoff. A larger Retry-After is honored.
	Backoff, MaxBackoff time.Duration
	// Timeout bounds each attempt; 0 means none beyond ctx.
	Timeout time.Duration
	// Note, when not nil, is told when a Retry-After longer than the
	// longest wait (see maxWait) is cut short.
	Note func(string)
	// MaxTokens bounds the reply ("max_tokens"); 0 leaves it out.
	MaxTokens int
	// Temperature is sent as "temperature".
	Temperature float64
	// TopLogprobs, when positive, asks for the log-probabilities of the
	// reply's tokens and of that many alternatives at each position
	// ("logprobs": true, "top_logprobs": N), as AlpacaEval's weighted
	// annotator does.
	TopLogprobs int
}

// Completion is a judge's reply.
type Completion struct {
	// Text is choices[0].message.content.
	Text string
	// TopLogprobs are the alternatives at the reply's first token, when
	// the endpoint returned them (choices[0].logprobs.content[0]); nil
	// otherwise.
	TopLogprobs []TokenLogprob
	// Raw is choices[0] as the endpoint sent it: AlpacaEval's
	// "raw_completion".
	Raw json.RawMessage
}

// TokenLogprob is one alternative token and its log-probability.
type TokenLogprob struct {
	Token   string  `json:"token"`
	Logprob float64 `json:"logprob"`
}

// endpoint returns the chat completions address for c.URL.
func (c *Client) endpoint() string {
	u := strings.TrimRight(c.URL, "/")
	switch {
	case strings.HasSuffix(u, "/chat/completions"):
		return u
	case strings.HasSuffix(u, "/v1"):
		return u + "/chat/completions"
	}
	return u + "/v1/chat/completions"
}

// statusError is a non-2xx answer.
type statusError struct {
	code int
	body string
	wait time.Duration // Retry-After
}

func (e *statusError) Error() string {
	return fmt.Sprintf("judge endpoint answered %d %s: %s", e.code, http.StatusText(e.code), e.body)
}

func retryable(err error) bool {
	var se *statusError
	if errors.As(err, &se) {
		return se.code == http.StatusTooManyRequests || se.code == http.StatusRequestTimeout || se.code >= 500
	}
	return true // network errors, timeouts, truncated bodies
}

// Complete sends messages and returns the reply, retrying transient
// failures.
func (c *Client) Complete(ctx context.Context, messages []Message) (Completion, error) {
	req := map[string]any{"model": c.Model, "messages": messages, "temperature": c.Temperature}
	if c.MaxTokens > 0 {
		req["max_tokens"] = c.MaxTokens
	}
	if c.TopLogprobs > 0 {
		req["logprobs"] = true
		req["top_logprobs"] = c.TopLogprobs
	}
	body, err := json.Marshal(req)
	if err != nil {
		return Completion{}, err
	}
	wait := c.Backoff
	for attempt := 0; ; attempt++ {
		reply, err := c.once(ctx, body)
		if err == nil {
			return reply, nil
		}
		if ctx.Err() != nil {
			return Completion{}, ctx.Err()
		}
		if attempt >= c.MaxRetries || !retryable(err) {
			if attempt > 0 {
				return Completion{}, fmt.Errorf("%w (after %d retries)", err, attempt)
			}
			return Completion{}, err
		}
		d := time.Duration(float64(wait) * (0.75 + 0.5*rand.Float64()))
		var se *statusError
		if errors.As(err, &se) && se.wait > d {
			d = se.wait
			// An endpoint may ask for a day (Retry-After: 86400): wait no
			// longer than the client's own longest wait, and say so.
			if limit := c.maxWait(); d > limit {
				d = limit
				if c.Note != nil {
					c.Note(fmt.Sprintf("judge endpoint answered %d and asked to wait %v before retrying; waiting %v instead (the longer of --timeout and the maximum backoff), retry %d of %d", se.code, se.wait, limit, attempt+1, c.MaxRetries))
				}
			}
		}
		select {
		case <-ctx.Done():
			return Completion{}, ctx.Err()
		case <-time.After(d):
		}
		wait = min(2*wait, max(c.MaxBackoff, c.Backoff))
	}
}

// once makes one request.
// defaultMaxWait bounds a Retry-After when the client sets neither a
// timeout nor a maximum backoff.
const defaultMaxWait = time.Minute

// maxWait is the longest wait before a retry that a Retry-After may ask
// for: the longer of Timeout and MaxBackoff (Backoff when that is less),
// or defaultMaxWait when none is set.
func (c *Client) maxWait() time.Duration {
	if w := max(c.Timeout, c.MaxBackoff, c.Backoff); w > 0 {
		return w
	}
	return defaultMaxWait
}

func (c *Client) once(ctx context.Context, body []byte) (Completion, error) {
	if c.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.Timeout)
		defer cancel()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.endpoint(), bytes.NewReader(body))
	if err != nil {
		return Completion{}, err
	}
	req.Header.Set("Content-Type", "application/json")
	if c.APIKey != "" {
		req.Header.Set("Authorization", "Bearer "+c.APIKey)
	}
	hc := c.HTTP
	if hc == nil {
		hc = http.DefaultClient
	}
	resp, err := hc.Do(req)
	if err != nil {
		return Completion{}, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return Completion{}, fmt.Errorf("reading the judge's answer: %w", err)
	}
	if resp.StatusCode/100 != 2 {
		se := &statusError{code: resp.StatusCode, body: snippet(data)}
		if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && s > 0 {
			se.wait = time.Duration(s) * time.Second
		}
		return Completion{}, se
	}
	return parseCompletion(resp.StatusCode, data)
}

// parseCompletion reads a chat completion's first choice.
func parseCompletion(code int, data []byte) (Completion, error) {
	var out struct {
		Choices []json.RawMessage `json:"choices"`
	}
	if err := json.Unmarshal(data, &out); err != nil {
		return Completion{}, &statusError{code: code, body: "not a chat completion: " + snippet(data)}
	}
	var choice struct {
		Message struct {
			Content *string `json:"content"`
		} `json:"message"`
		Logprobs *struct {
			Content []struct {
				TopLogprobs []TokenLogprob `json:"top_logprobs"`
			} `json:"content"`
		} `json:"logprobs"`
	}
	if len(out.Choices) == 0 || json.Unmarshal(out.Choices[0], &choice) != nil || choice.Message.Content == nil {
		return Completion{}, &statusError{code: http.StatusBadGateway, body: "chat completion without choices[0].message.content: " + snippet(data)}
	}
	comp := Completion{Text: *choice.Message.Content, Raw: out.Choices[0]}
	if lp := choice.Logprobs; lp != nil && len(lp.Content) > 0 && len(lp.Content[0].TopLogprobs) > 0 {
		comp.TopLogprobs = lp.Content[0].TopLogprobs
	}
	return comp, nil
}

// snippet shortens a response body for an error message.
func snippet(b []byte) string {
	s := strings.TrimSpace(string(b))
	if len(s) > 300 {
		s = s[:300] + "…"
	}
	return s
}
