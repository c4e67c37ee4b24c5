package data

import (
	"errors"
	"fmt"
	"slices"
	"strings"
)

// parseHH splits an Anthropic HH transcript "\n\nHuman: …\n\nAssistant: …"
// into messages at every "\n\nHuman:" and "\n\nAssistant:" marker. Each
// message's content is the text up to the next marker with leading and
// trailing white space removed. The transcript must begin with a Human turn;
// white space before its first "Human:" is allowed.
func parseHH(s string) ([]Message, error) {
	rest := strings.TrimLeft(s, " \t\r\n")
	if !strings.HasPrefix(rest, "Human:") {
		return nil, errors.New(`does not begin with "Human:"`)
	}
	rest = rest[len("Human:"):]
	role := "user"
	var out []Message
	for {
		h := strings.Index(rest, hhHuman)
		a := strings.Index(rest, hhAssistant)
		end, next, skip := len(rest), "", 0
		switch {
		case h >= 0 && (a < 0 || h < a):
			end, next, skip = h, "user", len(hhHuman)
		case a >= 0:
			end, next, skip = a, "assistant", len(hhAssistant)
		}
		out = append(out, Message{Role: role, Content: strings.TrimSpace(rest[:end])})
		if next == "" {
			return out, nil
		}
		role, rest = next, rest[end+skip:]
	}
}

// splitHH splits a pair of HH transcripts into the shared prompt and the two
// final Assistant turns (see FormatHH).
func splitHH(chosen, rejected string) (prompt []Message, c, r Message, err error) {
	cm, err := parseHH(chosen)
	if err != nil {
		return nil, Message{}, Message{}, fmt.Errorf("chosen: %w", err)
	}
	rm, err := parseHH(rejected)
	if err != nil {
		return nil, Message{}, Message{}, fmt.Errorf("rejected: %w", err)
	}
	for _, t := range []struct {
		key string
		ms  []Message
	}{{keyChosen, cm}, {keyRejected, rm}} {
		if last := t.ms[len(t.ms)-1]; last.Role != "assistant" {
			return nil, Message{}, Message{}, fmt.Errorf("%s: the transcript ends with a Human turn, want an Assistant turn last", t.key)
		}
	}
	cp, rp := cm[:len(cm)-1], rm[:len(rm)-1]
	if ok, i := sameMessages(cp, rp); !ok {
		return nil, Message{}, Message{}, fmt.Errorf("%w (chosen has %d turns, rejected %d, first difference at turn %d)", ErrDivergentTranscripts, len(cm), len(rm), i)
	}
	return slices.Clip(cp), cm[len(cm)-1], rm[len(rm)-1], nil
}
