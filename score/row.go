// Package score scores sampled responses: each [Row] holds one prompt and
// the K responses a policy sampled for it (a line of `relupo generate
// --num-return-sequences K`), and a [Scorer] fills one score per response.
//
// Three scorers are provided: a [Verifier] for tasks with a checkable answer
// (a regular expression extracts the final answer, which is compared with
// the row's reference), a [RewardModel] (a Hugging Face
// *ForSequenceClassification checkpoint with one label) and a [Judge] (an
// LLM asked for a pointwise 1–10 rating through an OpenAI-compatible
// endpoint).
//
// # Row files
//
// [ReadRows] and [WriteRows] read and write rows as JSON Lines, one object
// per prompt:
//
//	{"id": "q1",
//	 "prompt": [{"role": "user", "content": "What is 6·7?"}],
//	 "responses": ["… #### 42", "… #### 41"],
//	 "reference": "#### 42",
//	 "scores": [1, 0]}
//
// "prompt" is a list of messages or a string (one user message); "messages"
// is accepted in its place (the layout `relupo generate` reads). "id" is a
// string or a number and may be absent. "reference" (or "answer", the
// GSM8K column) is the known answer, needed by the verifier only.
// "scores" is absent before scoring; afterwards it has one number per
// response, null where the response could not be scored (NaN in Go). Any
// other field of an input row is kept as it is and written back.
package score

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"

	"github.com/relupo/relupo/chat"
)

// Row is one prompt with its sampled responses.
type Row struct {
	// ID names the prompt ("id" in the file); it may be empty.
	ID string
	// Prompt is the conversation the responses answer. It is empty only
	// for a pre-tokenized prompt ("prompt_input_ids", kept in Extra),
	// which the verifier can score but the reward model and the judge,
	// which read the prompt's text, cannot.
	Prompt []chat.Message
	// Responses are the sampled assistant responses.
	Responses []string
	// Reference is the known answer, for verifiers; it may be empty.
	Reference string
	// Scores has one score per response once a Scorer has run (nil
	// before); NaN means the response could not be scored.
	Scores []float64
	// Extra holds the row's other fields, by name, written back as they
	// were read.
	Extra map[string]json.RawMessage
	// Where names the row in messages: "FILE:LINE" for rows read by
	// ReadRows; it is not written.
	Where string
}

// name is how messages refer to the row.
func (r *Row) name(i int) string {
	if r.Where != "" {
		return r.Where
	}
	if r.ID != "" {
		return fmt.Sprintf("row %d (id %q)", i+1, r.ID)
	}
	return fmt.Sprintf("row %d", i+1)
}

// Scorer fills each row's Scores with one score per response (NaN where a
// response could not be scored) and returns how many responses could not
// be. progress, when not nil, is called as rows complete with the number
// of rows done and in all. An error means the scoring as a whole could not
// proceed (bad input, a cancelled ctx), not that some responses failed.
type Scorer interface {
	Score(ctx context.Context, rows []Row, progress func(done, total int)) (failed int, err error)
}

// Fields of a row file.
const (
	keyID        = "id"
	keyPrompt    = "prompt"
	keyMessages  = "messages"
	keyResponses = "responses"
	keyReference = "reference"
	keyAnswer    = "answer"
	keyScores    = "scores"
	// keyPromptIDs holds a pre-tokenized prompt (kept in Extra); such a
	// row may have an empty prompt, which only the verifier can score.
	keyPromptIDs = "prompt_input_ids"
)

// MarshalJSON writes the row in the row-file layout, NaN scores as null.
func (r Row) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	b.WriteByte('{')
	first := true
	field := func(k string, v any) error {
		enc, err := marshal(v)
		if err != nil {
			return fmt.Errorf("%s: %w", k, err)
		}
		if !first {
			b.WriteByte(',')
		}
		first = false
		kb, _ := marshal(k)
		b.Write(kb)
		b.WriteByte(':')
		b.Write(enc)
		return nil
	}
	if r.ID != "" {
		if err := field(keyID, r.ID); err != nil {
			return nil, err
		}
	}
	prompt := r.Prompt
	if prompt == nil {
		prompt = []chat.Message{}
	}
	responses := r.Responses
	if responses == nil {
		responses = []string{}
	}
	if err := field(keyPrompt, prompt); err != nil {
		return nil, err
	}
	if err := field(keyResponses, responses); err != nil {
		return nil, err
	}
	if r.Reference != "" {
		if err := field(keyReference, r.Reference); err != nil {
			return nil, err
		}
	}
	if r.Scores != nil {
		if err := field(keyScores, Nullable(r.Scores)); err != nil {
			return nil, err
		}
	}
	keys := make([]string, 0, len(r.Extra))
	for k := range r.Extra {
		switch k {
		case keyID, keyPrompt, keyMessages, keyResponses, keyReference, keyScores:
			continue // written above from the fields
		}
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		if err := field(k, r.Extra[k]); err != nil {
			return nil, err
		}
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

// marshal is json.Marshal without HTML escaping.
func marshal(v any) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimRight(b.Bytes(), "\n"), nil
}

// Nullable returns scores as JSON values: numbers, and nil (null) for NaN
// and ±Inf, which JSON cannot hold.
func Nullable(scores []float64) []*float64 {
	out := make([]*float64, len(scores))
	for i, s := range scores {
		if !math.IsNaN(s) && !math.IsInf(s, 0) {
			out[i] = &scores[i]
		}
	}
	return out
}

// UnmarshalJSON reads a row in the row-file layout (see the package
// documentation). Extra fields are kept in Extra.
func (r *Row) UnmarshalJSON(b []byte) error {
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(b, &raw); err != nil {
		return err
	}
	if raw == nil {
		return errors.New("a row must be a JSON object")
	}
	*r = Row{}
	for k, v := range raw {
		switch k {
		case keyID, keyPrompt, keyMessages, keyResponses, keyReference, keyScores:
		default:
			if r.Extra == nil {
				r.Extra = map[string]json.RawMessage{}
			}
			r.Extra[k] = v
		}
	}
	if v, ok := raw[keyID]; ok && !isNull(v) {
		var s string
		var n json.Number
		switch {
		case json.Unmarshal(v, &s) == nil:
			r.ID = s
		case json.Unmarshal(v, &n) == nil:
			r.ID = n.String()
		default:
			return fmt.Errorf(`"id" must be a string or a number, not %s`, clip(string(v)))
		}
	}

	pv, ok := raw[keyPrompt]
	pkey := keyPrompt
	if !ok || isNull(pv) {
		pv, ok = raw[keyMessages]
		pkey = keyMessages
	}
	_, tokenized := raw[keyPromptIDs]
	switch {
	case (!ok || isNull(pv)) && !tokenized:
		return errors.New(`the row has no prompt (want "prompt": a string or a list of {"role", "content"} messages, or "messages")`)
	case ok && !isNull(pv):
		var text string
		if err := json.Unmarshal(pv, &text); err == nil {
			r.Prompt = []chat.Message{{Role: "user", Content: text}}
		} else if err := json.Unmarshal(pv, &r.Prompt); err != nil {
			return fmt.Errorf("%q must be a string or a list of {\"role\", \"content\"} messages: %v", pkey, err)
		}
		if len(r.Prompt) == 0 && !tokenized {
			return fmt.Errorf("%q is an empty list", pkey)
		}
	}
	for i, m := range r.Prompt {
		if m.Role == "" {
			return fmt.Errorf("%q message %d has no role", pkey, i)
		}
	}

	rv, ok := raw[keyResponses]
	if !ok || isNull(rv) {
		return errors.New(`the row has no "responses" (a list of response strings, as relupo generate --num-return-sequences writes)`)
	}
	if err := json.Unmarshal(rv, &r.Responses); err != nil {
		return fmt.Errorf(`"responses" must be a list of strings: %v`, err)
	}
	if len(r.Responses) == 0 {
		return errors.New(`"responses" is an empty list`)
	}

	for _, k := range []string{keyReference, keyAnswer} {
		v, ok := raw[k]
		if !ok || isNull(v) {
			continue
		}
		var s string
		var n json.Number
		switch {
		case json.Unmarshal(v, &s) == nil:
			r.Reference = s
		case json.Unmarshal(v, &n) == nil:
			r.Reference = n.String()
		default:
			return fmt.Errorf("%q must be a string or a number, not %s", k, clip(string(v)))
		}
		break
	}

	if v, ok := raw[keyScores]; ok && !isNull(v) {
		var s []*float64
		if err := json.Unmarshal(v, &s); err != nil {
			return fmt.Errorf(`"scores" must be a list of numbers (null for unscored): %v`, err)
		}
		if len(s) != len(r.Responses) {
			return fmt.Errorf(`"scores" has %d values for %d responses`, len(s), len(r.Responses))
		}
		r.Scores = make([]float64, len(s))
		for i, p := range s {
			r.Scores[i] = math.NaN()
			if p != nil {
				r.Scores[i] = *p
			}
		}
	}
	return nil
}

func isNull(v json.RawMessage) bool { return string(bytes.TrimSpace(v)) == "null" }

// clip shortens s for a message.
func clip(s string) string {
	const n = 80
	if r := []rune(s); len(r) > n {
		return string(r[:n]) + "…"
	}
	return s
}

// MaxRowBytes bounds one line of a row file.
const MaxRowBytes = 256 << 20

// ReadRows reads a row file (JSON Lines; blank lines are skipped). name
// labels errors, which give the line: "FILE:LINE: what is wrong". A file
// with no rows is an error.
func ReadRows(r io.Reader, name string) ([]Row, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 1<<20), MaxRowBytes)
	var rows []Row
	for line := 1; sc.Scan(); line++ {
		b := sc.Bytes()
		if line == 1 {
			b = bytes.TrimPrefix(b, []byte{0xEF, 0xBB, 0xBF})
		}
		if len(bytes.TrimSpace(b)) == 0 {
			continue
		}
		where := name + ":" + strconv.Itoa(line)
		var row Row
		if err := json.Unmarshal(b, &row); err != nil {
			var se *json.SyntaxError
			if errors.As(err, &se) {
				return nil, fmt.Errorf("%s: not a JSON object: %v", where, err)
			}
			return nil, fmt.Errorf("%s: %w", where, err)
		}
		row.Where = where
		rows = append(rows, row)
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			return nil, fmt.Errorf("%s: a line is longer than %d MiB", name, MaxRowBytes>>20)
		}
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	if len(rows) == 0 {
		return nil, fmt.Errorf("%s: no rows (want JSON lines with a prompt and its responses)", name)
	}
	return rows, nil
}

// WriteRows writes rows as JSON Lines in the row-file layout.
func WriteRows(w io.Writer, rows []Row) error {
	bw := bufio.NewWriter(w)
	enc := json.NewEncoder(bw)
	enc.SetEscapeHTML(false)
	for i := range rows {
		if err := enc.Encode(rows[i]); err != nil {
			return fmt.Errorf("score: %s: %w", rows[i].name(i), err)
		}
	}
	return bw.Flush()
}
