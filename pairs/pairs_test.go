package pairs

import (
	"bytes"
	"errors"
	"io"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/relupo/relupo/chat"
	"github.com/relupo/relupo/data"
	"github.com/relupo/relupo/score"
)

var nan = math.NaN()

func row(id string, responses []string, scores ...float64) score.Row {
	return score.Row{ID: id, Prompt: []chat.Message{{Role: "user", Content: "q " + id}}, Responses: responses, Scores: scores}
}

func TestBuild(t *testing.T) {
	tests := []struct {
		name   string
		rows   []score.Row
		o      Options
		chosen []string // chosen/rejected per pair, "chosen>rejected"
		stats  Stats
	}{
		{"best and worst", []score.Row{row("a", []string{"m", "hi", "lo", "m2"}, 0.5, 0.9, 0.1, 0.4)}, Options{},
			[]string{"hi>lo"}, Stats{Rows: 1, Pairs: 1}},
		{"first of equal scores", []score.Row{row("a", []string{"h1", "l1", "h2", "l2"}, 1, 0, 1, 0)}, Options{},
			[]string{"h1>l1"}, Stats{Rows: 1, Pairs: 1}},
		{"all equal is a tie", []score.Row{row("a", []string{"x", "y", "z"}, 1, 1, 1)}, Options{},
			nil, Stats{Rows: 1, Ties: 1}},
		{"same text is a tie", []score.Row{row("a", []string{"x", "x"}, 2, 1)}, Options{},
			nil, Stats{Rows: 1, Ties: 1}},
		{"below the gap", []score.Row{row("a", []string{"x", "y"}, 0.55, 0.5)}, Options{MinScoreGap: 0.1},
			nil, Stats{Rows: 1, BelowGap: 1}},
		{"at the gap is kept", []score.Row{row("a", []string{"x", "y"}, 3, 1)}, Options{MinScoreGap: 2},
			[]string{"x>y"}, Stats{Rows: 1, Pairs: 1}},
		{"K = 1", []score.Row{row("a", []string{"x"}, 1)}, Options{},
			nil, Stats{Rows: 1, TooFew: 1}},
		{"empty responses are not candidates", []score.Row{row("a", []string{"", "ok", "  \n", "meh"}, 9, 0.7, -9, 0.2)}, Options{},
			[]string{"ok>meh"}, Stats{Rows: 1, Pairs: 1, Empty: 2}},
		{"only one non-empty", []score.Row{row("a", []string{"", "ok"}, 1, 0)}, Options{},
			nil, Stats{Rows: 1, TooFew: 1, Empty: 1}},
		{"NaN and Inf are unscored", []score.Row{row("a", []string{"n", "hi", "inf", "lo"}, nan, 0.6, math.Inf(1), 0.3)}, Options{},
			[]string{"hi>lo"}, Stats{Rows: 1, Pairs: 1, Unscored: 2}},
		{"all unscored", []score.Row{row("a", []string{"x", "y"}, nan, nan)}, Options{},
			nil, Stats{Rows: 1, TooFew: 1, Unscored: 2}},
		{"no scores", []score.Row{{ID: "a", Prompt: []chat.Message{{Role: "user", Content: "q"}}, Responses: []string{"x", "y"}}}, Options{},
			nil, Stats{Rows: 1, TooFew: 1, Unscored: 2}},
		{"negative scores", []score.Row{row("a", []string{"x", "y"}, -3.5, -1.25)}, Options{MinScoreGap: 2.25},
			[]string{"y>x"}, Stats{Rows: 1, Pairs: 1}},
		{"mixed rows", []score.Row{
			row("a", []string{"x", "y"}, 1, 0),
			row("b", []string{"x", "y"}, 0, 0),
			row("c", []string{"x"}, 0),
			row("d", []string{"x", "y"}, 0.2, 0.1),
			row("e", []string{"p", "q", "r"}, 0, 5, 2),
		}, Options{MinScoreGap: 0.5},
			[]string{"x>y", "q>p"}, Stats{Rows: 5, Pairs: 2, Ties: 1, BelowGap: 1, TooFew: 1}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ps, st := Build(tc.rows, tc.o)
			var got []string
			for _, p := range ps {
				got = append(got, p.Chosen+">"+p.Rejected)
				if p.ChosenScore <= p.RejectedScore {
					t.Errorf("pair %q: chosen score %v not above rejected %v", p.ID, p.ChosenScore, p.RejectedScore)
				}
				if r := tc.rows[p.Row]; r.ID != p.ID || r.Responses[p.ChosenIndex] != p.Chosen || r.Responses[p.RejectedIndex] != p.Rejected {
					t.Errorf("pair %q: row %d, responses %d and %d are not its own", p.ID, p.Row, p.ChosenIndex, p.RejectedIndex)
				}
			}
			if !reflect.DeepEqual(got, tc.chosen) {
				t.Errorf("pairs %q, want %q", got, tc.chosen)
			}
			if st != tc.stats {
				t.Errorf("stats %+v, want %+v", st, tc.stats)
			}
			if st.Pairs+st.Dropped() != st.Rows {
				t.Errorf("stats %+v: pairs and drops do not add up to the rows", st)
			}
		})
	}
}

// TestWriteReadsBackThroughData writes pairs and loads them with the
// loader `relupo train` uses.
func TestWriteReadsBackThroughData(t *testing.T) {
	rows := []score.Row{
		row("a", []string{"good a", "bad a", "", "mid a"}, 0.9, -0.4, nan, 0.1),
		{ID: "b", Prompt: []chat.Message{{Role: "system", Content: "Be brief."}, {Role: "user", Content: "first"},
			{Role: "assistant", Content: "one"}, {Role: "user", Content: "second <&>"}},
			Responses: []string{"worse b", "better b"}, Scores: []float64{2, 7}},
	}
	ps, st := Build(rows, Options{})
	if st.Pairs != 2 {
		t.Fatalf("stats %+v", st)
	}
	var buf bytes.Buffer
	if err := Write(&buf, ps); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 2 {
		t.Fatalf("%d lines:\n%s", len(lines), buf.String())
	}
	for _, want := range []string{`"prompt_id":"a"`, `"prompt":"q a"`, `"all_generated_responses":["good a","bad a","","mid a"]`,
		`"all_rm_scores":[0.9,-0.4,null,0.1]`, `"score_chosen":0.9`, `"score_rejected":-0.4`} {
		if !strings.Contains(lines[0], want) {
			t.Errorf("line 1 lacks %s:\n%s", want, lines[0])
		}
	}
	if !strings.Contains(lines[1], `"prompt":"second <&>"`) {
		t.Errorf("line 2: %s", lines[1])
	}

	path := filepath.Join(t.TempDir(), "pairs.jsonl")
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	rd, err := data.Open(path, data.Options{Strict: true})
	if err != nil {
		t.Fatal(err)
	}
	defer rd.Close()
	var got []data.Pair
	for {
		p, err := rd.Next()
		if err != nil {
			if errors.Is(err, io.EOF) {
				break
			}
			t.Fatal(err)
		}
		got = append(got, p)
	}
	if rd.Format() != data.FormatConversational {
		t.Errorf("read as %s, want %s", rd.Format(), data.FormatConversational)
	}
	if len(got) != 2 {
		t.Fatalf("read %d pairs, want 2", len(got))
	}
	for i, p := range ps {
		g := got[i]
		if g.Chosen != (data.Message{Role: "assistant", Content: p.Chosen}) || g.Rejected != (data.Message{Role: "assistant", Content: p.Rejected}) {
			t.Errorf("pair %d read back as chosen %+v rejected %+v, want %q and %q", i, g.Chosen, g.Rejected, p.Chosen, p.Rejected)
		}
		if len(g.Prompt) != len(p.Prompt) {
			t.Fatalf("pair %d prompt read back as %+v, want %+v", i, g.Prompt, p.Prompt)
		}
		for j, m := range p.Prompt {
			if g.Prompt[j] != (data.Message{Role: m.Role, Content: m.Content}) {
				t.Errorf("pair %d prompt message %d read back as %+v, want %+v", i, j, g.Prompt[j], m)
			}
		}
	}
}

func TestWriteErrors(t *testing.T) {
	tests := []struct {
		name string
		p    Pair
		want string
	}{
		{"no prompt", Pair{ID: "x", Chosen: "a", Rejected: "b", ChosenScore: 1}, `pair 1 (id "x") has no prompt`},
		{"NaN score", Pair{ID: "x", Prompt: []chat.Message{{Role: "user", Content: "q"}}, Chosen: "a", Rejected: "b", ChosenScore: nan}, "not a finite number"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := Write(&bytes.Buffer{}, []Pair{tc.p})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Write = %v, want an error containing %q", err, tc.want)
			}
		})
	}
}
