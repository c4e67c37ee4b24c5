package judge

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math"
	"regexp"
	"strconv"
	"strings"
)

// DefaultPointwisePrompt asks a judge to rate one answer from 1 to 10 and to
// end its reply with the rating in double brackets, as MT-Bench's
// single-answer grading does. It is the user message of the request; see
// PointwisePrompt for its placeholders.
const DefaultPointwisePrompt = `You are an impartial judge. Rate the quality of the AI assistant's answer to the user's request below.
Weigh how helpful, correct, relevant, complete and clear the answer is, and how well it follows the request. Do not let the answer's length or style sway you, and be as objective as you can.
First explain your judgment in a few sentences. Then give a rating from 1 (worst) to 10 (best) in exactly this format on the last line: "Rating: [[N]]", for example "Rating: [[6]]".

[Conversation]
{conversation}

[The Start of the Assistant's Answer]
{answer}
[The End of the Assistant's Answer]`

// PointwisePrompt is the request a pointwise judge receives: Template
// becomes the user message with its placeholders replaced:
//
//	{question}      the prompt's last user message
//	{conversation}  every prompt message, one "Role: content" block each
//	                (for a one-turn prompt, "User: " and the question)
//	{answer}        the response rated
//
// Template must hold {answer} and one of {question} and {conversation}.
// System, when not empty, is sent first as the system message. The reply's
// rating is its last "[[N]]" (or, failing that, its last "Rating: N"),
// which must lie in [Min, Max].
type PointwisePrompt struct {
	System   string
	Template string
	Min, Max float64
}

// NewPointwisePrompt checks template (the text of a prompt file; ""
// means DefaultPointwisePrompt) and returns the prompt with the 1–10 scale.
func NewPointwisePrompt(template string) (PointwisePrompt, error) {
	if strings.TrimSpace(template) == "" {
		template = DefaultPointwisePrompt
	}
	if !strings.Contains(template, "{answer}") {
		return PointwisePrompt{}, errors.New("the judge prompt has no {answer} placeholder for the response")
	}
	if !strings.Contains(template, "{question}") && !strings.Contains(template, "{conversation}") {
		return PointwisePrompt{}, errors.New("the judge prompt has neither a {question} nor a {conversation} placeholder for the prompt")
	}
	return PointwisePrompt{Template: template, Min: 1, Max: 10}, nil
}

// Messages returns the request rating answer as a reply to the prompt
// messages.
func (p PointwisePrompt) Messages(prompt []Message, answer string) []Message {
	var question string
	var conv strings.Builder
	for i, m := range prompt {
		if m.Role == "user" {
			question = m.Content
		}
		if i > 0 {
			conv.WriteString("\n\n")
		}
		role := m.Role
		if role != "" {
			role = strings.ToUpper(role[:1]) + role[1:]
		}
		conv.WriteString(role + ": " + m.Content)
	}
	r := strings.NewReplacer("{question}", question, "{conversation}", conv.String(), "{answer}", answer)
	user := Message{Role: "user", Content: r.Replace(p.Template)}
	if p.System != "" {
		return []Message{{Role: "system", Content: p.System}, user}
	}
	return []Message{user}
}

var (
	ratingBrackets = regexp.MustCompile(`\[\[\s*([-+]?[0-9]+(?:\.[0-9]+)?)\s*\]\]`)
	ratingWord     = regexp.MustCompile(`(?i)rating\s*[:=]?\s*\**\s*([-+]?[0-9]+(?:\.[0-9]+)?)`)
)

// ParseRating reads the rating from a judge's reply: the last "[[N]]" after
// any "<think>…</think>" block, or else the last "Rating: N". It fails when
// there is none or it lies outside [p.Min, p.Max].
func (p PointwisePrompt) ParseRating(reply string) (float64, error) {
	s := reply
	if i := strings.LastIndex(s, "</think>"); i >= 0 {
		s = s[i+len("</think>"):]
	}
	var num string
	for _, re := range []*regexp.Regexp{ratingBrackets, ratingWord} {
		if m := re.FindAllStringSubmatch(s, -1); m != nil {
			num = m[len(m)-1][1]
			break
		}
	}
	if num == "" {
		return math.NaN(), fmt.Errorf("no rating in the judge's reply (want \"Rating: [[N]]\"): %q", short(reply))
	}
	v, err := strconv.ParseFloat(num, 64)
	if err != nil || v < p.Min || v > p.Max {
		return math.NaN(), fmt.Errorf("the judge's rating %s is outside [%g, %g]", num, p.Min, p.Max)
	}
	return v, nil
}

// PointwiseVersion is part of every pointwise cache key.
const PointwiseVersion = "pointwise-v1"

// PointwiseKey is the cache key of one rating request: a SHA-256 over
// PointwiseVersion, the judge model and the request's messages, so that a
// changed prompt file never reuses another prompt's ratings.
func PointwiseKey(judgeModel string, messages []Message) string {
	h := sha256.New()
	write := func(s string) {
		var n [8]byte
		binary.LittleEndian.PutUint64(n[:], uint64(len(s)))
		h.Write(n[:])
		io.WriteString(h, s)
	}
	write(PointwiseVersion)
	write(judgeModel)
	for _, m := range messages {
		write(m.Role)
		write(m.Content)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// MethodRating marks a cached pointwise rating: its Reply holds the rating,
// read again by ParseRating.
const MethodRating = "rating"

// Rate asks the judge for the rating of answer as a reply to prompt. With a
// cache, an earlier reply to the same request is read instead of asking,
// and a reply with a rating is recorded (one without is asked again next
// time). asked reports whether the endpoint was called. A reply without a
// valid rating is an error, as is a failed request.
func Rate(ctx context.Context, c Completer, p PointwisePrompt, judgeModel string, cache *Cache, prompt []Message, answer string) (rating float64, asked bool, err error) {
	msgs := p.Messages(prompt, answer)
	key := PointwiseKey(judgeModel, msgs)
	if cache != nil {
		if j, ok := cache.Get(key); ok {
			if v, err := p.ParseRating(j.Reply); err == nil {
				return v, false, nil
			}
		}
	}
	comp, err := c.Complete(ctx, msgs)
	if err != nil {
		return math.NaN(), true, err
	}
	v, err := p.ParseRating(comp.Text)
	if err != nil {
		return math.NaN(), true, err
	}
	if cache != nil {
		j := Judgment{Key: key, JudgeModel: judgeModel, Instruction: short(lastUser(prompt)), Method: MethodRating, Reply: comp.Text}
		if err := cache.Put(j); err != nil {
			return v, true, err
		}
	}
	return v, true, nil
}

func lastUser(ms []Message) string {
	for i := len(ms) - 1; i >= 0; i-- {
		if ms[i].Role == "user" {
			return ms[i].Content
		}
	}
	return ""
}
