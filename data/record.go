package data

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"
)

// A record is one decoded input row: JSON objects decode to map[string]any
// holding string, json.Number, bool, nil, []any and map[string]any; Parquet
// rows use int64 and float64 for numbers instead of json.Number.
type record = map[string]any

// unread stands for a Parquet column that the normalizers never look at and
// that is therefore not decoded.
type unread struct{}

// Field names.
const (
	keyPrompt        = "prompt"
	keyChosen        = "chosen"
	keyRejected      = "rejected"
	keyConversations = "conversations"
	keySystem        = "system"
	keyPromptIDs     = "prompt_input_ids"
	keyChosenIDs     = "chosen_input_ids"
	keyRejectedIDs   = "rejected_input_ids"
	keyRefChosen     = "ref_chosen_logps"
	keyRefRejected   = "ref_rejected_logps"
)

// knownKeys are the only fields any format reads.
var knownKeys = []string{keyPrompt, keyChosen, keyRejected, keyConversations, keySystem,
	keyPromptIDs, keyChosenIDs, keyRejectedIDs, keyRefChosen, keyRefRejected}

// HH transcript markers.
const (
	hhHuman     = "\n\nHuman:"
	hhAssistant = "\n\nAssistant:"
)

// detectFormat picks the format of rec by the rules in the package
// documentation.
func detectFormat(rec record) (Format, error) {
	has := func(k string) bool { _, ok := rec[k]; return ok }
	switch {
	case has(keyPromptIDs) && has(keyChosenIDs) && has(keyRejectedIDs):
		return FormatTokenized, nil
	case has(keyConversations):
		return FormatShareGPT, nil
	case !has(keyChosen) || !has(keyRejected):
		keys := make([]string, 0, len(rec))
		for k := range rec {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		return "", fmt.Errorf("cannot detect the format: want chosen and rejected (or conversations, or prompt_input_ids, chosen_input_ids and rejected_input_ids); the record has %s", quoteList(keys))
	case has(keyPrompt):
		_, p := rec[keyPrompt].([]any)
		_, c := rec[keyChosen].([]any)
		_, r := rec[keyRejected].([]any)
		if p || c || r {
			return FormatConversational, nil
		}
		return FormatStandard, nil
	}
	c, ok1 := rec[keyChosen].(string)
	r, ok2 := rec[keyRejected].(string)
	if ok1 && ok2 && looksHH(c) && looksHH(r) {
		return FormatHH, nil
	}
	return FormatImplicit, nil
}

func looksHH(s string) bool {
	return strings.HasPrefix(strings.TrimLeft(s, " \t\r\n"), "Human:") && strings.Contains(s, hhAssistant)
}

func quoteList(keys []string) string {
	if len(keys) == 0 {
		return "no fields"
	}
	q := make([]string, len(keys))
	for i, k := range keys {
		q[i] = strconv.Quote(k)
	}
	return "fields " + strings.Join(q, ", ")
}

// normalize turns rec into a Pair according to format, which must not be
// FormatAuto. Source is left for the caller to fill in.
func normalize(rec record, format Format) (Pair, error) {
	var (
		p   Pair
		err error
	)
	switch format {
	case FormatStandard:
		p, err = normStandard(rec)
	case FormatConversational:
		p, err = normConversational(rec)
	case FormatImplicit:
		p, err = normImplicit(rec)
	case FormatHH:
		p, err = normHH(rec)
	case FormatShareGPT:
		p, err = normShareGPT(rec)
	case FormatTokenized:
		p, err = normTokenized(rec)
	default:
		return Pair{}, fmt.Errorf("unknown format %q", format)
	}
	if err != nil {
		return Pair{}, err
	}
	p.Format = format
	if p.RefChosenLogps, err = optFloat(rec, keyRefChosen); err != nil {
		return Pair{}, err
	}
	if p.RefRejectedLogps, err = optFloat(rec, keyRefRejected); err != nil {
		return Pair{}, err
	}
	if !p.Tokenized {
		if err := checkText(p); err != nil {
			return Pair{}, err
		}
	}
	return p, nil
}

// checkText validates the text of a normalized, untokenized pair.
func checkText(p Pair) error {
	if len(p.Prompt) == 0 {
		return errors.New("empty prompt")
	}
	for i, m := range p.Prompt {
		if !utf8.ValidString(m.Content) {
			return fmt.Errorf("prompt message %d: invalid UTF-8", i)
		}
	}
	if !utf8.ValidString(p.Chosen.Content) {
		return errors.New("chosen: invalid UTF-8")
	}
	if !utf8.ValidString(p.Rejected.Content) {
		return errors.New("rejected: invalid UTF-8")
	}
	if strings.TrimSpace(p.Chosen.Content) == "" {
		return fmt.Errorf("chosen: %w", ErrEmptyResponse)
	}
	if strings.TrimSpace(p.Rejected.Content) == "" {
		return fmt.Errorf("rejected: %w", ErrEmptyResponse)
	}
	if p.Chosen.Content == p.Rejected.Content {
		return ErrSameResponse
	}
	return nil
}

// typeName names the JSON type of v for messages.
func typeName(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case string:
		return "a string"
	case json.Number, int64, float64:
		return "a number"
	case bool:
		return "a boolean"
	case []any:
		return "a list"
	case map[string]any:
		return "an object"
	case unread:
		return "an unread column"
	}
	return fmt.Sprintf("a %T", v)
}

func missing(key string) error { return fmt.Errorf("missing field %q", key) }

// str returns the string field key.
func str(rec record, key string) (string, error) {
	v, ok := rec[key]
	if !ok {
		return "", missing(key)
	}
	s, ok := v.(string)
	if !ok {
		return "", fmt.Errorf("%s: want a string, got %s", key, typeName(v))
	}
	return s, nil
}

// list returns the list field key.
func list(rec record, key string) ([]any, error) {
	v, ok := rec[key]
	if !ok {
		return nil, missing(key)
	}
	l, ok := v.([]any)
	if !ok {
		return nil, fmt.Errorf("%s: want a list, got %s", key, typeName(v))
	}
	return l, nil
}

func normStandard(rec record) (Pair, error) {
	prompt, err := str(rec, keyPrompt)
	if err != nil {
		return Pair{}, err
	}
	chosen, err := str(rec, keyChosen)
	if err != nil {
		return Pair{}, err
	}
	rejected, err := str(rec, keyRejected)
	if err != nil {
		return Pair{}, err
	}
	if prompt == "" {
		return Pair{}, errors.New("empty prompt")
	}
	return Pair{
		Prompt:    []Message{{Role: "user", Content: prompt}},
		Chosen:    Message{Role: "assistant", Content: chosen},
		Rejected:  Message{Role: "assistant", Content: rejected},
		PlainText: true,
	}, nil
}

// chatRoles are the roles allowed in message lists.
var chatRoles = []string{"system", "user", "assistant"}

// messages decodes a list of {role, content} objects; what names it in errors.
func messages(l []any, what string) ([]Message, error) {
	out := make([]Message, len(l))
	for i, v := range l {
		o, ok := v.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("%s[%d]: want a {role, content} object, got %s", what, i, typeName(v))
		}
		role, err := str(o, "role")
		if err != nil {
			return nil, fmt.Errorf("%s[%d]: %w", what, i, err)
		}
		if !slices.Contains(chatRoles, role) {
			return nil, fmt.Errorf("%s[%d]: unsupported role %q (want system, user or assistant)", what, i, role)
		}
		content, err := str(o, "content")
		if err != nil {
			return nil, fmt.Errorf("%s[%d]: %w", what, i, err)
		}
		out[i] = Message{Role: role, Content: content}
	}
	return out, nil
}

// messageList returns the message-list field key.
func messageList(rec record, key string) ([]Message, error) {
	l, err := list(rec, key)
	if err != nil {
		return nil, err
	}
	return messages(l, key)
}

// lastAssistant splits a chosen or rejected conversation into its leading
// messages and its final assistant message.
func lastAssistant(ms []Message, key string) ([]Message, Message, error) {
	if len(ms) == 0 {
		return nil, Message{}, fmt.Errorf("%s: %w (no messages)", key, ErrEmptyResponse)
	}
	last := ms[len(ms)-1]
	if last.Role != "assistant" {
		return nil, Message{}, fmt.Errorf("%s: the last message is from %q, want \"assistant\"", key, last.Role)
	}
	return ms[:len(ms)-1], last, nil
}

// sameMessages reports whether a and b are equal; if not, it also returns
// the index of the first difference.
func sameMessages(a, b []Message) (bool, int) {
	n := min(len(a), len(b))
	for i := range n {
		if a[i] != b[i] {
			return false, i
		}
	}
	return len(a) == len(b), n
}

// splitChosenRejected splits two conversations into their shared leading
// messages and their final assistant messages.
func splitChosenRejected(rec record) (prefix []Message, chosen, rejected Message, err error) {
	cm, err := messageList(rec, keyChosen)
	if err != nil {
		return nil, Message{}, Message{}, err
	}
	rm, err := messageList(rec, keyRejected)
	if err != nil {
		return nil, Message{}, Message{}, err
	}
	cp, c, err := lastAssistant(cm, keyChosen)
	if err != nil {
		return nil, Message{}, Message{}, err
	}
	rp, r, err := lastAssistant(rm, keyRejected)
	if err != nil {
		return nil, Message{}, Message{}, err
	}
	if ok, i := sameMessages(cp, rp); !ok {
		return nil, Message{}, Message{}, fmt.Errorf("chosen and rejected differ before their last message (chosen has %d leading messages, rejected %d, first difference at message %d)", len(cp), len(rp), i)
	}
	return slices.Clip(cp), c, r, nil
}

func normConversational(rec record) (Pair, error) {
	prefix, c, r, err := splitChosenRejected(rec)
	if err != nil {
		return Pair{}, err
	}
	var prompt []Message
	switch v := rec[keyPrompt].(type) {
	case []any:
		if prompt, err = messages(v, keyPrompt); err != nil {
			return Pair{}, err
		}
	case string:
		prompt = prefix
		if len(prompt) == 0 && v != "" {
			prompt = []Message{{Role: "user", Content: v}}
		}
	case nil:
		// A missing or null prompt: the prompt is chosen[:-1].
		prompt = prefix
	default:
		return Pair{}, fmt.Errorf("prompt: want a string or a list of messages, got %s", typeName(v))
	}
	return Pair{Prompt: prompt, Chosen: c, Rejected: r}, nil
}

func normImplicit(rec record) (Pair, error) {
	c, ok1 := rec[keyChosen].(string)
	r, ok2 := rec[keyRejected].(string)
	if !ok1 || !ok2 {
		prefix, cm, rm, err := splitChosenRejected(rec)
		if err != nil {
			return Pair{}, err
		}
		return Pair{Prompt: prefix, Chosen: cm, Rejected: rm}, nil
	}
	prompt, cr, rr := extractPrompt(c, r)
	if prompt == "" {
		return Pair{}, errors.New("chosen and rejected share no prompt (no common prefix)")
	}
	return Pair{
		Prompt:    []Message{{Role: "user", Content: prompt}},
		Chosen:    Message{Role: "assistant", Content: cr},
		Rejected:  Message{Role: "assistant", Content: rr},
		PlainText: true,
	}, nil
}

// extractPrompt splits two strings into their common prefix and the rest,
// with the rules of TRL's extract_prompt (see FormatImplicit). Indexes are
// in characters (runes), as in Python.
func extractPrompt(chosen, rejected string) (prompt, c, r string) {
	i := 0 // byte index of the first differing rune
	for i < len(chosen) && i < len(rejected) && chosen[i] == rejected[i] {
		i++
	}
	for i > 0 && i < len(chosen) && !utf8.RuneStart(chosen[i]) {
		i--
	}
	if i == len(chosen) || i == len(rejected) {
		// One is a prefix of the other: TRL's loop ends on the last
		// character of the shorter one without a break.
		if i == 0 {
			return "", chosen, rejected
		}
		_, size := utf8.DecodeLastRuneInString(chosen[:i])
		i -= size
	} else if i > 0 && chosen[i-1] == ' ' {
		i--
	}
	return chosen[:i], chosen[i:], rejected[i:]
}

func normHH(rec record) (Pair, error) {
	c, err := str(rec, keyChosen)
	if err != nil {
		return Pair{}, err
	}
	r, err := str(rec, keyRejected)
	if err != nil {
		return Pair{}, err
	}
	prompt, cm, rm, err := splitHH(c, r)
	if err != nil {
		return Pair{}, err
	}
	return Pair{Prompt: prompt, Chosen: cm, Rejected: rm}, nil
}

// shareGPTRole maps a ShareGPT role tag to a chat role.
func shareGPTRole(from string) (string, bool) {
	switch from {
	case "human", "user":
		return "user", true
	case "gpt", "assistant":
		return "assistant", true
	case "system":
		return "system", true
	}
	return "", false
}

// shareGPTTurn decodes one {from, value} (or {role, content}) object.
func shareGPTTurn(v any, what string) (Message, error) {
	o, ok := v.(map[string]any)
	if !ok {
		return Message{}, fmt.Errorf("%s: want a {from, value} object, got %s", what, typeName(v))
	}
	roleKey, textKey := "from", "value"
	if _, ok := o[roleKey]; !ok {
		if _, ok := o["role"]; ok {
			roleKey, textKey = "role", "content"
		}
	}
	from, err := str(o, roleKey)
	if err != nil {
		return Message{}, fmt.Errorf("%s: %w", what, err)
	}
	role, ok := shareGPTRole(from)
	if !ok {
		return Message{}, fmt.Errorf("%s: unsupported role %q (want human, gpt or system)", what, from)
	}
	text, err := str(o, textKey)
	if err != nil {
		return Message{}, fmt.Errorf("%s: %w", what, err)
	}
	return Message{Role: role, Content: text}, nil
}

func normShareGPT(rec record) (Pair, error) {
	conv, err := list(rec, keyConversations)
	if err != nil {
		return Pair{}, err
	}
	prompt := make([]Message, 0, len(conv)+1)
	if v, ok := rec[keySystem]; ok && v != nil {
		s, ok := v.(string)
		if !ok {
			return Pair{}, fmt.Errorf("system: want a string, got %s", typeName(v))
		}
		if s != "" {
			prompt = append(prompt, Message{Role: "system", Content: s})
		}
	}
	for i, v := range conv {
		m, err := shareGPTTurn(v, fmt.Sprintf("conversations[%d]", i))
		if err != nil {
			return Pair{}, err
		}
		if m.Role == "system" {
			if i != 0 {
				return Pair{}, fmt.Errorf("conversations[%d]: a system turn must come first", i)
			}
			prompt = prompt[:0] // the conversation's own system turn wins
		}
		prompt = append(prompt, m)
	}
	if len(prompt) == 0 || prompt[len(prompt)-1].Role != "user" {
		return Pair{}, errors.New("conversations: the last turn must be from the user (human)")
	}
	var resp [2]Message
	for i, key := range []string{keyChosen, keyRejected} {
		v, ok := rec[key]
		if !ok {
			return Pair{}, missing(key)
		}
		if resp[i], err = shareGPTTurn(v, key); err != nil {
			return Pair{}, err
		}
		if resp[i].Role != "assistant" {
			return Pair{}, fmt.Errorf("%s: the response is from %q, want an assistant (gpt) turn", key, resp[i].Role)
		}
	}
	return Pair{Prompt: prompt, Chosen: resp[0], Rejected: resp[1]}, nil
}

// maxTokenID bounds token ids; vocabularies are far smaller.
const maxTokenID = math.MaxInt32

// tokenIDs returns the token-id list field key.
func tokenIDs(rec record, key string) ([]int, error) {
	l, err := list(rec, key)
	if err != nil {
		return nil, err
	}
	ids := make([]int, len(l))
	for i, v := range l {
		id, ok := intValue(v)
		if !ok || id < 0 || id > maxTokenID {
			return nil, fmt.Errorf("%s[%d]: want a token id (an integer from 0 to %d), got %s", key, i, maxTokenID, valueString(v))
		}
		ids[i] = int(id)
	}
	return ids, nil
}

// intValue returns v as an integer if it is an integral number.
func intValue(v any) (int64, bool) {
	switch n := v.(type) {
	case json.Number:
		i, err := strconv.ParseInt(string(n), 10, 64)
		return i, err == nil
	case int64:
		return n, true
	case float64:
		if n == math.Trunc(n) && math.Abs(n) < 1<<53 {
			return int64(n), true
		}
	}
	return 0, false
}

// valueString describes v for messages: numbers and short strings verbatim.
func valueString(v any) string {
	switch x := v.(type) {
	case json.Number:
		return string(x)
	case int64, float64:
		return fmt.Sprint(x)
	case string:
		if len(x) <= 40 {
			return strconv.Quote(x)
		}
	}
	return typeName(v)
}

func normTokenized(rec record) (Pair, error) {
	var p Pair
	var err error
	if p.PromptIDs, err = tokenIDs(rec, keyPromptIDs); err != nil {
		return Pair{}, err
	}
	if p.ChosenIDs, err = tokenIDs(rec, keyChosenIDs); err != nil {
		return Pair{}, err
	}
	if p.RejectedIDs, err = tokenIDs(rec, keyRejectedIDs); err != nil {
		return Pair{}, err
	}
	p.Tokenized = true
	switch {
	case len(p.PromptIDs) == 0:
		return Pair{}, errors.New("empty prompt_input_ids")
	case len(p.ChosenIDs) == 0:
		return Pair{}, fmt.Errorf("chosen_input_ids: %w", ErrEmptyResponse)
	case len(p.RejectedIDs) == 0:
		return Pair{}, fmt.Errorf("rejected_input_ids: %w", ErrEmptyResponse)
	case slices.Equal(p.ChosenIDs, p.RejectedIDs):
		return Pair{}, ErrSameResponse
	}
	return p, nil
}

// optFloat returns the optional finite number field key; absent and null
// give nil.
func optFloat(rec record, key string) (*float64, error) {
	var f float64
	switch v := rec[key].(type) {
	case nil, unread:
		return nil, nil
	case json.Number:
		var err error
		if f, err = strconv.ParseFloat(string(v), 64); err != nil {
			return nil, fmt.Errorf("%s: invalid number %s", key, v)
		}
	case float64:
		f = v
	case int64:
		f = float64(v)
	default:
		return nil, fmt.Errorf("%s: want a number, got %s", key, typeName(v))
	}
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return nil, fmt.Errorf("%s: want a finite number, got %v", key, f)
	}
	return &f, nil
}
