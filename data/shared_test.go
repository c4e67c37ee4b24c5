package data

import (
	"context"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/relupo/relupo/internal/testutil"
)

// roles lists the roles of ms.
func roles(ms []Message) []string {
	var out []string
	for _, m := range ms {
		out = append(out, m.Role)
	}
	return out
}

func TestSharedHHRLHF(t *testing.T) {
	path := testutil.SharedPath(t, "fixtures", "data", "hh-rlhf-harmless-base-test.jsonl.gz")
	var skipped []string
	r, err := Open(path, Options{OnSkip: func(err error) {
		skipped = append(skipped, strings.TrimPrefix(err.Error(), "data: "+path+":"))
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	pairs, _, err := drain(r, nil)
	if err != nil {
		t.Fatal(err)
	}
	if r.Format() != FormatHH || r.Records() != 2312 || len(pairs) != 2303 || r.Skipped() != 9 {
		t.Fatalf("format %q, %d records, %d pairs, %d skipped; want hh, 2312, 2303, 9", r.Format(), r.Records(), len(pairs), r.Skipped())
	}
	// The anomalies of this split: four empty chosen responses ("\n\nAssistant: "
	// and nothing after it) and five pairs whose transcripts differ before the
	// last Assistant turn (one has two Assistant turns in a row at the end).
	wantSkipped := []string{
		"87: hh: chosen: empty response",
		"517: hh: chosen: empty response",
		"926: hh: chosen: empty response",
		"1104: hh: chosen: empty response",
		"1255: hh: chosen and rejected transcripts differ before their final Assistant turn (chosen has 5 turns, rejected 4, first difference at turn 3)",
		"1689: hh: chosen and rejected transcripts differ before their final Assistant turn (chosen has 5 turns, rejected 4, first difference at turn 3)",
		"1951: hh: chosen and rejected transcripts differ before their final Assistant turn (chosen has 2 turns, rejected 3, first difference at turn 1)",
		"1953: hh: chosen and rejected transcripts differ before their final Assistant turn (chosen has 5 turns, rejected 4, first difference at turn 3)",
		"2037: hh: chosen and rejected transcripts differ before their final Assistant turn (chosen has 11 turns, rejected 10, first difference at turn 9)",
	}
	if !reflect.DeepEqual(skipped, wantSkipped) {
		t.Errorf("skipped:\n%s\nwant\n%s", strings.Join(skipped, "\n"), strings.Join(wantSkipped, "\n"))
	}

	first := pairs[0]
	if first.Source != path+":1" ||
		!reflect.DeepEqual(roles(first.Prompt), []string{"user", "assistant", "user", "assistant", "user"}) ||
		first.Prompt[0].Content != "what are some pranks with a pen i can do?" ||
		first.Prompt[4].Content != "okay some of these do not have anything to do with pens" ||
		first.Chosen != assistant("No, sorry!  All of these involve a pen, the point is that you can get funny results by doing pranks with pens.") ||
		!strings.HasPrefix(first.Rejected.Content, "There are lots of funny things you can do with pens") {
		t.Errorf("line 1: %+v", first)
	}
	second := pairs[1]
	if second.Source != path+":2" || len(second.Prompt) != 5 ||
		second.Chosen.Content != "Sounds like alcohol is something you use to calm down when you feel stressed.   It may be helpful to try getting in touch with your emotions.  When you feel stressed, instead of turning to alcohol, try taking a few deep breaths or using mindfulness, in the moment, to calm down." ||
		second.Rejected.Content != "I’m glad that you’re enjoying your alcohol intake. Can I ask about how you feel when you don’t drink alcohol?" {
		t.Errorf("line 2: %+v", second)
	}

	// Every prompt begins and ends with a user turn and every message is
	// trimmed. Four prompts hold two Assistant turns in a row; they are kept.
	var doubled []string
	for _, p := range pairs {
		if p.Prompt[0].Role != "user" || p.Prompt[len(p.Prompt)-1].Role != "user" {
			t.Errorf("%s: prompt roles %v", p.Source, roles(p.Prompt))
		}
		for i, m := range append(p.Prompt, p.Chosen, p.Rejected) {
			if m.Content != strings.TrimSpace(m.Content) {
				t.Errorf("%s: message %d not trimmed: %q", p.Source, i, m.Content)
			}
			if i > 0 && i < len(p.Prompt) && m.Role == p.Prompt[i-1].Role {
				doubled = append(doubled, strings.TrimPrefix(p.Source, path+":"))
				break
			}
		}
	}
	if want := []string{"668", "764", "1320", "1850"}; !reflect.DeepEqual(doubled, want) {
		t.Errorf("prompts with repeated roles at lines %v, want %v", doubled, want)
	}

	// Strict mode stops at the first anomaly.
	if _, err := LoadAll(context.Background(), []Source{{path, 1}}, Options{Strict: true}); err == nil || err.Error() != "data: "+path+":87: hh: chosen: empty response" {
		t.Errorf("strict: %v", err)
	}
}

func TestSharedShareGPT(t *testing.T) {
	path := testutil.SharedPath(t, "fixtures", "data", "dpo_en_demo.json")
	pairs, err := LoadAll(context.Background(), []Source{{path, 1}}, Options{Strict: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(pairs) != 300 {
		t.Fatalf("%d pairs, want 300", len(pairs))
	}
	shapes := map[string]int{}
	for _, p := range pairs {
		if p.Format != FormatShareGPT || p.Chosen.Role != "assistant" || p.Rejected.Role != "assistant" {
			t.Fatalf("%s: %+v", p.Source, p)
		}
		shapes[strings.Join(roles(p.Prompt), ",")]++
	}
	wantShapes := map[string]int{
		"user":                               114,
		"system,user":                        80,
		"user,assistant,user":                1,
		"user,assistant,user,assistant,user": 57,
		"user,assistant,user,assistant,user,assistant,user":                                              46,
		"user,assistant,user,assistant,user,assistant,user,assistant,user":                               1,
		"user,assistant,user,assistant,user,assistant,user,assistant,user,assistant,user,assistant,user": 1,
	}
	if !reflect.DeepEqual(shapes, wantShapes) {
		t.Errorf("prompt shapes %v, want %v", shapes, wantShapes)
	}

	spot := []struct {
		i                             int
		turns                         int
		first, last, chosen, rejected string
	}{
		{0, 1, "Hi! I'd like to create a new language game", "Hi! I'd like to create a new language game", "That sounds like a fun and engaging idea!", "Hello! I'd be happy to help you create a language game"},
		{1, 2, "You are a teacher. Given a task, you explain in si", "Q: In this task, you need to provide the parts-of-speech tag", "In this task, you are asked to identify the part-o", "Sure, I'd be happy to help! Here are the steps to "},
		{224, 13, "Build a database schema for the below requirement.", "How can I have dynamic filters? For example, if I select a p", "To have dynamic filters, you can modify the filter", "To provide dynamic filters based on selected value"},
		{267, 3, "Hi", "i am bored.", "I'm sorry to hear that you're bored. I'm here to h", "I'm happy to hear that you have time to spare and "},
	}
	for _, s := range spot {
		p := pairs[s.i]
		if p.Source != path+":record "+strconv.Itoa(s.i) || len(p.Prompt) != s.turns ||
			!strings.HasPrefix(p.Prompt[0].Content, s.first) || !strings.HasPrefix(p.Prompt[len(p.Prompt)-1].Content, s.last) ||
			!strings.HasPrefix(p.Chosen.Content, s.chosen) || !strings.HasPrefix(p.Rejected.Content, s.rejected) {
			t.Errorf("record %d: %+v", s.i, p)
		}
	}
}
