package generate

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/relupo/relupo/chat"
)

// Record is one prompt read from an input file, with what the output
// formats need to name it.
//
// Accepted records, by the first field present:
//
//	{"prompt_input_ids": [1, 2, ...]}          token ids, used verbatim
//	{"messages": [{"role", "content"}, ...]}   a conversation
//	{"question_id", "turns": [{"content"}]}    Arena-Hard v0.1 (first turn)
//	{"uid", "prompt"}                          Arena-Hard (current layout)
//	{"prompt": "..."}                          one user message
//	{"instruction": "...", "dataset"}          AlpacaEval
//
// Any record may also carry "id" (a string or number) and a known answer
// for verifiers in "reference" or "answer" (GSM8K's layout); both are copied
// to the --num-return-sequences output.
//
// Arena-Hard's questions are single-turn; of a multi-turn "turns" list only
// the first turn is answered. A turn is an object with "content" or a plain
// string (MT-Bench style).
type Record struct {
	// Where names the record in errors: "FILE:LINE" or "FILE: item N".
	Where string
	// InputIDs are pre-tokenized prompt ids, used verbatim; nil for text.
	InputIDs []int32
	// Messages is the conversation to render with the chat template.
	Messages []chat.Message
	// Instruction is the user's request as text: the instruction, prompt
	// or first turn, or the last user message of a conversation. Empty for
	// pre-tokenized records.
	Instruction string
	// Dataset is AlpacaEval's dataset field, when present.
	Dataset string
	// QuestionID is Arena-Hard v0.1's question_id (a JSON string or number),
	// UID the current layout's uid, Category their category.
	QuestionID json.RawMessage
	UID        string
	Category   string
	// ID is the record's "id" (a number as its JSON text), else its uid or
	// question_id; empty when it has none.
	ID string
	// Reference is the known answer, "reference" or else "answer"; empty
	// when the record has neither.
	Reference string
}

type rawRecord struct {
	PromptInputIDs []int32           `json:"prompt_input_ids"`
	Messages       []chat.Message    `json:"messages"`
	Turns          []json.RawMessage `json:"turns"`
	Prompt         *string           `json:"prompt"`
	Instruction    *string           `json:"instruction"`
	Dataset        *string           `json:"dataset"`
	QuestionID     json.RawMessage   `json:"question_id"`
	UID            *string           `json:"uid"`
	Category       *string           `json:"category"`
	ID             json.RawMessage   `json:"id"`
	Reference      *string           `json:"reference"`
	Answer         *string           `json:"answer"`
}

// ReadRecords reads prompts from r: JSON lines, one record per line (blank
// lines skipped), or one JSON array of records (the AlpacaEval file
// layout). name labels errors, which give the line or item.
func ReadRecords(r io.Reader, name string) ([]Record, error) {
	br := bufio.NewReaderSize(r, 1<<20)
	if bom, _ := br.Peek(3); bytes.Equal(bom, []byte{0xEF, 0xBB, 0xBF}) {
		br.Discard(3) // a UTF-8 byte order mark
	}
	// Look past leading white space, without consuming it (line numbers
	// count it), to tell a JSON array from JSON lines.
	for k := 1; k <= 1<<20; k++ {
		b, err := br.Peek(k)
		if len(b) < k {
			if errors.Is(err, io.EOF) {
				return nil, nil
			}
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		if c := b[k-1]; c == ' ' || c == '\t' || c == '\r' || c == '\n' {
			continue
		} else if c == '[' {
			return readArray(br, name)
		}
		break
	}
	var recs []Record
	for line := 1; ; line++ {
		text, err := br.ReadBytes('\n')
		if len(bytes.TrimSpace(text)) > 0 {
			where := fmt.Sprintf("%s:%d", name, line)
			rec, perr := parseRecord(bytes.TrimSpace(text), where)
			if perr != nil {
				return nil, perr
			}
			recs = append(recs, rec)
		}
		if errors.Is(err, io.EOF) {
			return recs, nil
		}
		if err != nil {
			return nil, fmt.Errorf("%s:%d: %w", name, line, err)
		}
	}
}

func readArray(r io.Reader, name string) ([]Record, error) {
	var items []json.RawMessage
	if err := json.NewDecoder(r).Decode(&items); err != nil {
		return nil, fmt.Errorf("%s: invalid JSON array: %w", name, err)
	}
	recs := make([]Record, 0, len(items))
	for i, it := range items {
		rec, err := parseRecord(it, fmt.Sprintf("%s: item %d", name, i+1))
		if err != nil {
			return nil, err
		}
		recs = append(recs, rec)
	}
	return recs, nil
}

// parseRecord reads one record; where names it in errors.
func parseRecord(data []byte, where string) (Record, error) {
	var raw rawRecord
	if err := json.Unmarshal(data, &raw); err != nil {
		return Record{}, fmt.Errorf("%s: %w", where, err)
	}
	rec := Record{Where: where, QuestionID: raw.QuestionID}
	if string(rec.QuestionID) == "null" {
		rec.QuestionID = nil
	}
	if raw.Dataset != nil {
		rec.Dataset = *raw.Dataset
	}
	if raw.UID != nil {
		rec.UID = *raw.UID
	}
	if raw.Category != nil {
		rec.Category = *raw.Category
	}
	var err error
	if rec.ID, err = recordID(raw); err != nil {
		return Record{}, fmt.Errorf("%s: %w", where, err)
	}
	switch {
	case raw.Reference != nil:
		rec.Reference = *raw.Reference
	case raw.Answer != nil:
		rec.Reference = *raw.Answer
	}
	user := func(text string) {
		rec.Instruction = text
		rec.Messages = []chat.Message{{Role: "user", Content: text}}
	}
	switch {
	case raw.PromptInputIDs != nil:
		if len(raw.PromptInputIDs) == 0 {
			return Record{}, fmt.Errorf("%s: prompt_input_ids is empty", where)
		}
		rec.InputIDs = raw.PromptInputIDs
	case raw.Messages != nil:
		if len(raw.Messages) == 0 {
			return Record{}, fmt.Errorf("%s: messages is empty", where)
		}
		rec.Messages = raw.Messages
		for _, m := range raw.Messages {
			if m.Role == "user" {
				rec.Instruction = m.Content
			}
		}
	case raw.Turns != nil:
		if len(raw.Turns) == 0 {
			return Record{}, fmt.Errorf("%s: turns is empty", where)
		}
		var turn struct {
			Content *string `json:"content"`
		}
		var s string
		if err := json.Unmarshal(raw.Turns[0], &s); err == nil {
			user(s)
		} else if err := json.Unmarshal(raw.Turns[0], &turn); err == nil && turn.Content != nil {
			user(*turn.Content)
		} else {
			return Record{}, fmt.Errorf(`%s: turns[0] must be a string or an object with "content"`, where)
		}
	case raw.Prompt != nil:
		user(*raw.Prompt)
	case raw.Instruction != nil:
		user(*raw.Instruction)
	default:
		return Record{}, fmt.Errorf(`%s: no prompt: want one of "prompt_input_ids", "messages", "turns", "prompt" or "instruction"`, where)
	}
	return rec, nil
}

// recordID is a record's "id", else its uid, else its question_id: a JSON
// string's text or a number's JSON text. Only a malformed "id" is an
// error.
func recordID(raw rawRecord) (string, error) {
	if id := jsonScalar(raw.ID); id != nil {
		return *id, nil
	} else if v := bytes.TrimSpace(raw.ID); len(v) > 0 && string(v) != "null" {
		return "", fmt.Errorf("id must be a string or a number, got %s", v)
	}
	if raw.UID != nil {
		return *raw.UID, nil
	}
	if id := jsonScalar(raw.QuestionID); id != nil {
		return *id, nil
	}
	return "", nil
}

// jsonScalar is the text of a JSON string or the JSON text of a number;
// nil for anything else.
func jsonScalar(v json.RawMessage) *string {
	var s string
	if json.Unmarshal(v, &s) == nil {
		return &s
	}
	var n json.Number
	if json.Unmarshal(v, &n) == nil {
		s = n.String()
		return &s
	}
	return nil
}

// Encoder turns text into ids; *tokenizer.Tokenizer is one.
type Encoder interface {
	Encode(text string, addSpecialTokens bool) ([]int, error)
}

// Tokenize returns the prompt ids of rec. Pre-tokenized ids are returned
// as they are. Text is rendered with the chat template (add_generation_prompt
// true) and encoded without adding special tokens, as the template writes
// BOS itself. Without a template (tmpl nil) a single user message is encoded
// as plain text with the tokenizer's special tokens; a conversation cannot
// be.
func Tokenize(rec Record, tmpl *chat.Template, enc Encoder) ([]int32, error) {
	if rec.InputIDs != nil {
		return rec.InputIDs, nil
	}
	var text string
	addSpecial := false
	if tmpl != nil {
		var err error
		if text, err = tmpl.Render(rec.Messages, true); err != nil {
			return nil, fmt.Errorf("%s: %w", rec.Where, err)
		}
	} else {
		if len(rec.Messages) != 1 || rec.Messages[0].Role != "user" {
			roles := make([]string, len(rec.Messages))
			for i, m := range rec.Messages {
				roles[i] = m.Role
			}
			return nil, fmt.Errorf("%s: the tokenizer has no chat template, so only a single user message can be encoded (got roles %s)", rec.Where, strings.Join(roles, ", "))
		}
		text, addSpecial = rec.Messages[0].Content, true
	}
	ids, err := enc.Encode(text, addSpecial)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", rec.Where, err)
	}
	if len(ids) == 0 {
		return nil, fmt.Errorf("%s: the prompt encodes to no tokens", rec.Where)
	}
	out := make([]int32, len(ids))
	for i, id := range ids {
		out[i] = int32(id)
	}
	return out, nil
}
