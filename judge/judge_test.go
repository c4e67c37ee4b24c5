package judge

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/relupo/relupo/internal/testutil"
)

// judgeServer is a deterministic OpenAI-compatible judge on 127.0.0.1. It
// splits the prompt into the two outputs shown and answers with prefer;
// the first failFirst requests get failStatus instead.
type judgeServer struct {
	*httptest.Server
	prefer     func(first, second string) string
	failFirst  int64
	failStatus int

	requests, inFlight, maxInFlight atomic.Int64
	candFirst                       atomic.Int64 // requests whose first output contains "CAND"
	delay                           time.Duration
	mu                              sync.Mutex
	auth                            []string
}

func newJudgeServer(t *testing.T, prefer func(first, second string) string) *judgeServer {
	s := &judgeServer{prefer: prefer, failStatus: http.StatusServiceUnavailable}
	s.Server = httptest.NewServer(http.HandlerFunc(s.handle))
	t.Cleanup(s.Close)
	return s
}

func (s *judgeServer) handle(w http.ResponseWriter, r *http.Request) {
	n := s.requests.Add(1)
	cur := s.inFlight.Add(1)
	defer s.inFlight.Add(-1)
	for {
		m := s.maxInFlight.Load()
		if cur <= m || s.maxInFlight.CompareAndSwap(m, cur) {
			break
		}
	}
	s.mu.Lock()
	s.auth = append(s.auth, r.Header.Get("Authorization"))
	s.mu.Unlock()
	time.Sleep(s.delay)
	if r.URL.Path != "/v1/chat/completions" || r.Method != http.MethodPost {
		http.Error(w, "not found", http.StatusNotFound)
		return
	}
	if n <= s.failFirst {
		w.Header().Set("Retry-After", "0")
		http.Error(w, `{"error": "busy"}`, s.failStatus)
		return
	}
	var req struct {
		Model       string
		Messages    []Message
		Temperature float64
	}
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil || len(req.Messages) != 2 || req.Model == "" {
		http.Error(w, "bad request", http.StatusBadRequest)
		return
	}
	_, first, second, ok := splitAlpacaPrompt(req.Messages[1].Content)
	if !ok {
		http.Error(w, "not an AlpacaEval question", http.StatusBadRequest)
		return
	}
	if strings.Contains(first, "CAND") {
		s.candFirst.Add(1)
	}
	json.NewEncoder(w).Encode(map[string]any{
		"id": "x", "object": "chat.completion",
		"choices": []map[string]any{{"index": 0, "message": map[string]string{"role": "assistant", "content": s.prefer(first, second)}, "finish_reason": "stop"}},
	})
}

// preferMarker picks the output containing "GOOD".
func preferMarker(first, second string) string {
	if strings.Contains(second, "GOOD") {
		return " M\n"
	}
	return "m"
}

// markerItems: the candidate's answer is GOOD on items i%10 < 7.
func markerItems(n int) []Item {
	items := make([]Item, n)
	for i := range items {
		c, b := fmt.Sprintf("CAND answer %d", i), fmt.Sprintf("base answer %d GOOD", i)
		if i%10 < 7 {
			c, b = c+" GOOD", fmt.Sprintf("base answer %d", i)
		}
		items[i] = Item{Instruction: fmt.Sprintf("question %d", i), Baseline: b, Candidate: c}
	}
	return items
}

func testClient(url string) *Client {
	return &Client{URL: url, Model: "judge-1", MaxRetries: 4, Backoff: time.Millisecond, MaxBackoff: 4 * time.Millisecond, Timeout: 5 * time.Second}
}

func TestRunPositionRandomizedAndCorrect(t *testing.T) {
	srv := newJudgeServer(t, preferMarker)
	srv.delay = 2 * time.Millisecond
	items := markerItems(200)
	js, err := Run(context.Background(), testClient(srv.URL), items, Options{JudgeModel: "judge-1", Concurrency: 3, Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	s := mustSummarize(t, items, js)
	if s.N != 200 || s.Wins != 140 || s.Losses != 60 || math.Abs(s.WinRate-70) > 1e-9 {
		t.Errorf("summary %+v, want 140 wins of 200", s)
	}
	if want := 100 * math.Sqrt(0.7*0.3/199); math.Abs(s.StandardError-want) > 1e-9 {
		t.Errorf("standard error %.6f, want %.6f", s.StandardError, want)
	}
	if cf := srv.candFirst.Load(); cf < 70 || cf > 130 {
		t.Errorf("candidate shown first in %d of 200 questions; want about half", cf)
	}
	if m := srv.maxInFlight.Load(); m > 3 || m < 2 {
		t.Errorf("%d requests in flight at most, want ≤ 3 (and concurrency used)", m)
	}
	for i, j := range js {
		if j.CandidateFirst != CandidateFirst(1, items[i]) || j.JudgeModel != "judge-1" || j.Instruction != items[i].Instruction {
			t.Fatalf("judgment %d: %+v", i, j)
		}
	}
}

// A judge that always prefers the first position: randomizing the order
// turns its bias into a win rate near 50%.
func TestRunCancelsPositionBias(t *testing.T) {
	srv := newJudgeServer(t, func(_, _ string) string { return "m" })
	items := markerItems(400)
	js, err := Run(context.Background(), testClient(srv.URL), items, Options{JudgeModel: "j", Concurrency: 8, Seed: 7})
	if err != nil {
		t.Fatal(err)
	}
	if s := mustSummarize(t, items, js); math.Abs(s.WinRate-50) > 10 {
		t.Errorf("a first-position judge gives win rate %.1f%%, want about 50%%", s.WinRate)
	}
}

func TestRetries(t *testing.T) {
	for _, tc := range []struct {
		name      string
		status    int
		failFirst int64
		retries   int
		wantErr   string
	}{
		{"503 then success", http.StatusServiceUnavailable, 3, 4, ""},
		{"429 then success", http.StatusTooManyRequests, 2, 4, ""},
		{"too many failures", http.StatusInternalServerError, 100, 2, "500 Internal Server Error"},
		{"400 is not retried", http.StatusBadRequest, 1, 4, "400 Bad Request"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := newJudgeServer(t, preferMarker)
			srv.failFirst, srv.failStatus = tc.failFirst, tc.status
			c := testClient(srv.URL)
			c.MaxRetries = tc.retries
			c.APIKey = "sk-secret-key"
			items := markerItems(1)
			js, err := Run(context.Background(), c, items, Options{JudgeModel: "j", Concurrency: 1})
			if tc.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				if got := srv.requests.Load(); got != tc.failFirst+1 {
					t.Errorf("%d requests, want %d", got, tc.failFirst+1)
				}
				if js[0].Preference != 2 {
					t.Errorf("judgment %+v", js[0])
				}
			} else {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want %q", err, tc.wantErr)
				}
				if strings.Contains(err.Error(), "sk-secret") {
					t.Errorf("the API key leaked into the error: %v", err)
				}
				if js[0].Key != "" {
					t.Errorf("a failed item has a judgment %+v", js[0])
				}
				if tc.status == http.StatusBadRequest && srv.requests.Load() != 1 {
					t.Errorf("%d requests for a 400", srv.requests.Load())
				}
			}
			if srv.auth[0] != "Bearer sk-secret-key" {
				t.Errorf("Authorization %q", srv.auth[0])
			}
		})
	}
}

func TestTimeoutIsRetried(t *testing.T) {
	srv := newJudgeServer(t, preferMarker)
	var calls atomic.Int64
	slow := srv.Config.Handler
	srv.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if calls.Add(1) == 1 {
			time.Sleep(300 * time.Millisecond) // longer than the client's timeout
		}
		slow.ServeHTTP(w, r)
	})
	c := testClient(srv.URL)
	c.Timeout = 100 * time.Millisecond
	js, err := Run(context.Background(), c, markerItems(1), Options{JudgeModel: "j"})
	if err != nil || js[0].Preference != 2 || calls.Load() != 2 {
		t.Errorf("error %v, judgment %+v, %d calls", err, js[0], calls.Load())
	}
}

// A run that fails part way caches what it finished; the rerun asks only
// for the rest, and a third run asks nothing.
func TestCacheResume(t *testing.T) {
	path := filepath.Join(t.TempDir(), "judgments.jsonl")
	items := markerItems(30)
	flaky := newJudgeServer(t, func(first, second string) string {
		if strings.Contains(first+second, "answer 1") { // items 1, 10..19
			return "BROKEN"
		}
		return preferMarker(first, second)
	})
	// the judge errors (400) for items 1 and 10..19
	flaky.Config.Handler = func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			var buf strings.Builder
			b := make([]byte, 1<<16)
			for {
				n, err := r.Body.Read(b)
				buf.Write(b[:n])
				if err != nil {
					break
				}
			}
			if strings.Contains(buf.String(), "question 1") {
				http.Error(w, "nope", http.StatusBadRequest)
				return
			}
			r.Body = readCloser{strings.NewReader(buf.String())}
			h.ServeHTTP(w, r)
		})
	}(flaky.Config.Handler)

	run := func(url string) ([]Judgment, error) {
		cache, err := OpenCache(path)
		if err != nil {
			t.Fatal(err)
		}
		defer cache.Close()
		return Run(context.Background(), testClient(url), items, Options{JudgeModel: "j", Concurrency: 4, Seed: 3, Cache: cache})
	}
	_, err := run(flaky.URL)
	if err == nil || !strings.Contains(err.Error(), "11 of 30 items failed") {
		t.Fatalf("error %v", err)
	}
	good := newJudgeServer(t, preferMarker)
	js, err := run(good.URL)
	if err != nil {
		t.Fatal(err)
	}
	if got := good.requests.Load(); got != 11 {
		t.Errorf("resumed run made %d requests, want 11", got)
	}
	again := newJudgeServer(t, preferMarker)
	js2, err := run(again.URL)
	if err != nil {
		t.Fatal(err)
	}
	if got := again.requests.Load(); got != 0 {
		t.Errorf("a fully cached run made %d requests", got)
	}
	for i := range js {
		if !reflect.DeepEqual(js[i], js2[i]) {
			t.Errorf("item %d: %+v, then %+v from the cache", i, js[i], js2[i])
		}
	}
	if s := mustSummarize(t, items, js2); s.Wins != 21 || s.N != 30 {
		t.Errorf("summary %+v", s)
	}
	// another judge model or seed asks again
	other := newJudgeServer(t, preferMarker)
	cache, _ := OpenCache(path)
	Run(context.Background(), testClient(other.URL), items[:5], Options{JudgeModel: "j2", Seed: 3, Cache: cache})
	cache.Close()
	if other.requests.Load() != 5 {
		t.Errorf("another judge model made %d requests, want 5", other.requests.Load())
	}
}

// mustSummarize is Summarize without the downloaded data.
func mustSummarize(t *testing.T, items []Item, js []Judgment) Summary {
	t.Helper()
	s, err := Summarize(items, js, LCData{})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

type readCloser struct{ *strings.Reader }

func (readCloser) Close() error { return nil }

func TestCacheFile(t *testing.T) {
	dir := t.TempDir()
	j := Judgment{Key: "k1", JudgeModel: "j", Preference: 2, Reply: "M"}
	line, _ := json.Marshal(j)
	for _, tc := range []struct {
		name, content string
		want          int
		err           string
	}{
		{"empty", "", 0, ""},
		{"torn last line", string(line) + "\n" + `{"key": "k2", "pref`, 1, ""},
		{"missing final newline", string(line), 1, ""},
		{"garbage", "not json\n" + string(line) + "\n", 0, ":1: not a judgment"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(dir, strings.ReplaceAll(tc.name, " ", "_"))
			os.WriteFile(p, []byte(tc.content), 0o644)
			c, err := OpenCache(p)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("error %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if c.Len() != tc.want {
				t.Errorf("%d judgments, want %d", c.Len(), tc.want)
			}
			if err := c.Put(Judgment{Key: "k3", Preference: 1}); err != nil {
				t.Fatal(err)
			}
			c.Close()
			c2, err := OpenCache(p)
			if err != nil {
				t.Fatal(err)
			}
			defer c2.Close()
			if _, ok := c2.Get("k3"); !ok || c2.Len() != tc.want+1 {
				t.Errorf("after a put and reopen: %d judgments", c2.Len())
			}
		})
	}
}

func TestEndpoint(t *testing.T) {
	for in, want := range map[string]string{
		"http://h:8000":                         "http://h:8000/v1/chat/completions",
		"http://h:8000/":                        "http://h:8000/v1/chat/completions",
		"http://h:8000/v1":                      "http://h:8000/v1/chat/completions",
		"https://api.x.com/v1/chat/completions": "https://api.x.com/v1/chat/completions",
	} {
		if got := (&Client{URL: in}).endpoint(); got != want {
			t.Errorf("%s → %s, want %s", in, got, want)
		}
	}
}

// The shared AlpacaEval files: the SimPO model's outputs against
// gpt4_1106_preview's, judged by a server that prefers the longer answer.
// Every item matches, the win rate is the share of longer SimPO answers
// (ties go to the output shown first), and as length alone decides, the
// length-controlled win rate is about 50%.
func TestSharedAlpacaEvalFiles(t *testing.T) {
	base, err := ReadOutputs(testutil.SharedPath(t, "fixtures", "eval", "alpaca_eval", "gpt4_1106_preview_outputs.json"))
	if err != nil {
		t.Fatal(err)
	}
	cand, err := ReadOutputs(testutil.SharedPath(t, "fixtures", "eval", "alpaca_eval", "llama3_8b_instruct_simpo_outputs.json"))
	if err != nil {
		t.Fatal(err)
	}
	items, missing := Match(base, cand)
	if len(items) != 805 || len(missing) != 0 {
		t.Fatalf("%d items matched, %d missing", len(items), len(missing))
	}
	if base[0].Generator != "gpt4_1106_preview" || cand[0].Generator != "Llama-3-Instruct-8B-SimPO" {
		t.Errorf("generators %q, %q", base[0].Generator, cand[0].Generator)
	}
	// identical answers are draws without a question; the others are won
	// by the longer answer (the first shown on equal lengths)
	longer, identical := 0, 0
	for _, it := range items {
		lc, lb := len([]rune(it.Candidate)), len([]rune(it.Baseline))
		switch {
		case it.Candidate == it.Baseline:
			identical++
		case lc > lb || lc == lb && CandidateFirst(0, it):
			longer++
		}
	}
	srv := newJudgeServer(t, func(first, second string) string {
		if len([]rune(second)) > len([]rune(first)) {
			return "M"
		}
		return "m"
	})
	js, err := Run(context.Background(), testClient(srv.URL), items, Options{JudgeModel: "j", Concurrency: 8})
	if err != nil {
		t.Fatal(err)
	}
	s := mustSummarize(t, items, js)
	if s.Wins != longer || s.N != 805 || s.Draws != identical || int(srv.requests.Load()) != 805-identical {
		t.Errorf("%d wins, want %d (the longer answers)", s.Wins, longer)
	}
	// length decides every verdict, so the fit puts a large negative
	// weight on the baseline-minus-candidate length difference (the
	// verdicts are separable by length: with C = 1e4 the weight is only
	// held back by the penalty)
	if s.LC.LengthCoef > -5 || s.ByLetter+s.Identical != 805 || s.Identical != identical {
		t.Errorf("a length-only judge: win rate %.1f%%, LC %.1f%% (length coefficient %.2f, %d letters, %d identical)", s.WinRate, s.LCWinRate, s.LC.LengthCoef, s.ByLetter, s.Identical)
	}
	t.Logf("win rate %.2f ± %.2f, LC %.2f ± %.2f, length coef %.2f", s.WinRate, s.StandardError, s.LCWinRate, s.LCStandardError, s.LC.LengthCoef)
}

func TestReadOutputs(t *testing.T) {
	dir := t.TempDir()
	jsonl := filepath.Join(dir, "mine.jsonl")
	os.WriteFile(jsonl, []byte(`{"output_ids": [1], "output": "a", "instruction": "q1"}`+"\n\n"+`{"output": "b", "instruction": "q2", "generator": "g"}`+"\n"), 0o644)
	outs, err := ReadOutputs(jsonl)
	if err != nil {
		t.Fatal(err)
	}
	if len(outs) != 2 || outs[0].Generator != "mine" || outs[1].Generator != "g" || outs[1].Output != "b" {
		t.Errorf("%+v", outs)
	}
	bad := filepath.Join(dir, "bad.jsonl")
	os.WriteFile(bad, []byte(`{"output": "a", "instruction": "q1"}`+"\n"+`{"output_ids": [1], "output": "a"}`+"\n"), 0o644)
	if _, err := ReadOutputs(bad); err == nil || !strings.Contains(err.Error(), "bad.jsonl:2:") {
		t.Errorf("error %v", err)
	}
	arr := filepath.Join(dir, "arr.json")
	os.WriteFile(arr, []byte(`[{"instruction": "q", "output": "o"}, {"instruction": "q"}]`), 0o644)
	if _, err := ReadOutputs(arr); err == nil || !strings.Contains(err.Error(), "item 2") {
		t.Errorf("error %v", err)
	}
	items, missing := Match([]Output{{Instruction: "a", Output: "1"}, {Instruction: "a", Output: "2"}},
		[]Output{{Instruction: "a", Output: "x"}, {Instruction: "b", Output: "y"}, {Instruction: "a", Output: "z"}})
	if len(items) != 2 || items[0].Baseline != "1" || items[1].Baseline != "2" || len(missing) != 1 || missing[0] != "b" {
		t.Errorf("match: %+v, missing %v", items, missing)
	}
}

// With soft labels drawn exactly from a logistic model in the length term,
// the minimal GLM (no difficulties) recovers the model up to its small L1
// penalty, and the LC win rate is σ(θ).
func TestLengthControlledMinimal(t *testing.T) {
	const theta0, beta0 = 0.4, -1.5
	var rows []LCRow
	for i := 0; i < 400; i++ {
		rows = append(rows, LCRow{BaselineLen: 200 + (i*37)%400, CandidateLen: 200 + (i*91)%600, Index: i})
	}
	// the standardized differences, as LengthControlled computes them
	delta := make([]float64, len(rows))
	for i, r := range rows {
		delta[i] = float64(r.BaselineLen - r.CandidateLen)
	}
	_, sem := meanSEM(delta)
	sd := sem * math.Sqrt(float64(len(delta)))
	for i, d := range delta {
		rows[i].Preference = sigmoid(theta0 + beta0*math.Tanh(d/sd))
	}
	r, err := LengthControlled(rows, LCData{})
	if err != nil {
		t.Fatal(err)
	}
	// the L1 penalty (1/C against 400 rows) shrinks each weight by about
	// 1/(C·Σ σ'(z)) ≈ 1/(C·90): below 1e-2 for the C the folds pick
	if r.GLM != GLMMinimal || math.Abs(r.ModelCoef-theta0) > 1e-2 || math.Abs(r.LengthCoef-beta0) > 1e-2 || r.DifficultyCoef != 0 {
		t.Errorf("%s: fitted θ %.4f β %.4f, want %.2f %.2f", r.GLM, r.ModelCoef, r.LengthCoef, theta0, beta0)
	}
	if math.Abs(r.WinRate-sigmoid(r.ModelCoef)) > 1e-12 || r.StandardError > 1e-12 {
		t.Errorf("LC win rate %.6f ± %.6f, want σ(θ) = %.6f ± 0", r.WinRate, r.StandardError, sigmoid(r.ModelCoef))
	}

	// one row missing its verdict: left out of the fit, not of the average
	rows[3].Preference = math.NaN()
	if r2, err := LengthControlled(rows, LCData{}); err != nil || math.Abs(r2.WinRate-r.WinRate) > 1e-3 {
		t.Errorf("with a missing verdict: %v, %v", r2, err)
	}
	if _, err := LengthControlled(nil, LCData{}); err == nil {
		t.Error("no rows: no error")
	}
	// difficulties that do not cover an instruction
	if _, err := LengthControlled(rows, LCData{Difficulty: make([]float64, 10)}); err == nil || !strings.Contains(err.Error(), "instruction index 10") {
		t.Errorf("error %v", err)
	}
}

// A judge whose every reply is unreadable gives an error quoting one reply,
// and none of those replies is cached, so that a later run asks again.
// Before, the run reported a 0.00% win rate with exit 0 and cached them.
func TestUnreadableRepliesFailAndAreNotCached(t *testing.T) {
	path := filepath.Join(t.TempDir(), "judgments.jsonl")
	items := markerItems(6)
	babble := newJudgeServer(t, func(string, string) string { return "I cannot decide." })
	cache, err := OpenCache(path)
	if err != nil {
		t.Fatal(err)
	}
	js, err := Run(context.Background(), testClient(babble.URL), items, Options{JudgeModel: "j", Seed: 1, Cache: cache})
	cache.Close()
	if err != nil {
		t.Fatal(err)
	}
	_, err = Summarize(items, js, LCData{})
	if err == nil || !strings.Contains(err.Error(), "no valid verdict among 6 items (6 unreadable") || !strings.Contains(err.Error(), "I cannot decide") {
		t.Fatalf("summary error %v", err)
	}
	good := newJudgeServer(t, preferMarker)
	cache, _ = OpenCache(path)
	defer cache.Close()
	if _, err := Run(context.Background(), testClient(good.URL), items, Options{JudgeModel: "j", Seed: 1, Cache: cache}); err != nil {
		t.Fatal(err)
	}
	if got := good.requests.Load(); got != 6 {
		t.Errorf("the next run asked %d questions, want all 6 (unreadable replies must not be cached)", got)
	}
}
