package train

import (
	"encoding/json"
	"fmt"
)

// trainer_state.json has the layout of the Hugging Face Trainer's
// TrainerState (transformers' trainer_callback.py), so that its tooling
// reads a relupo checkpoint (TrainerState.load_from_json, which takes only
// its own keys, and the scripts that plot log_history): log_history,
// global_step, epoch (fractional), max_steps, the logging, evaluation and
// saving intervals, and best_model_checkpoint (null: relupo keeps no best
// model). What relupo needs beyond it to resume exactly (the data position,
// the log window, the run's record) is kept under stateful_callbacks, which
// TrainerState carries as an opaque mapping. A checkpoint written before
// this layout (relupo's fields at the top level) is still read.

// hfSettings are the run's settings that TrainerState echoes.
type hfSettings struct {
	LoggingSteps, EvalSteps, SaveSteps, TrainBatchSize, NumTrainEpochs int
}

// hfSettings returns the run's settings as TrainerState records them.
func (t *Trainer) hfSettings() hfSettings {
	o := t.Config.Loop
	epochs := 1
	if u := t.plan.updatesPerEpoch; u > 0 {
		epochs = (t.plan.maxSteps + u - 1) / u
	}
	return hfSettings{LoggingSteps: o.LoggingSteps, EvalSteps: o.EvalSteps, SaveSteps: o.SaveSteps,
		TrainBatchSize: o.BatchSize, NumTrainEpochs: epochs}
}

// relupoState is State's own fields, encoded as before trainer_state.json
// had HF's layout (a type without State's methods).
type relupoState State

// stateCallback is the stateful_callbacks key of relupoState.
const stateCallback = "relupo"

// hfState is TrainerState's JSON. best_global_step is left out: older
// transformers refuse keys they do not know.
type hfState struct {
	BestMetric          *float64                   `json:"best_metric"`
	BestModelCheckpoint *string                    `json:"best_model_checkpoint"`
	Epoch               float64                    `json:"epoch"`
	EvalSteps           int                        `json:"eval_steps"`
	GlobalStep          int                        `json:"global_step"`
	IsHyperParamSearch  bool                       `json:"is_hyper_param_search"`
	IsLocalProcessZero  bool                       `json:"is_local_process_zero"`
	IsWorldProcessZero  bool                       `json:"is_world_process_zero"`
	LogHistory          []Row                      `json:"log_history"`
	LoggingSteps        int                        `json:"logging_steps"`
	MaxSteps            int                        `json:"max_steps"`
	NumInputTokensSeen  int64                      `json:"num_input_tokens_seen"`
	NumTrainEpochs      int                        `json:"num_train_epochs"`
	SaveSteps           int                        `json:"save_steps"`
	StatefulCallbacks   map[string]json.RawMessage `json:"stateful_callbacks"`
	TotalFlos           float64                    `json:"total_flos"`
	TrainBatchSize      int                        `json:"train_batch_size"`
	TrialName           *string                    `json:"trial_name"`
	TrialParams         map[string]any             `json:"trial_params"`
}

// MarshalJSON writes s in TrainerState's layout.
func (s State) MarshalJSON() ([]byte, error) {
	own, err := json.Marshal(relupoState(s))
	if err != nil {
		return nil, err
	}
	h := hfState{
		Epoch: s.EpochFloat, GlobalStep: s.GlobalStep, MaxSteps: s.MaxSteps, LogHistory: s.LogHistory,
		EvalSteps: s.HF.EvalSteps, LoggingSteps: s.HF.LoggingSteps, SaveSteps: s.HF.SaveSteps,
		TrainBatchSize: s.HF.TrainBatchSize, NumTrainEpochs: s.HF.NumTrainEpochs,
		IsLocalProcessZero: true, IsWorldProcessZero: true, // only rank 0 writes it
		StatefulCallbacks: map[string]json.RawMessage{stateCallback: own},
	}
	if h.LogHistory == nil {
		h.LogHistory = []Row{}
	}
	return json.Marshal(h)
}

// UnmarshalJSON reads a trainer_state.json that relupo wrote, in
// TrainerState's layout or the earlier one.
func (s *State) UnmarshalJSON(b []byte) error {
	var h hfState
	if err := json.Unmarshal(b, &h); err != nil {
		return err
	}
	own, ok := h.StatefulCallbacks[stateCallback]
	if !ok {
		own = b // the layout before HF's: relupo's fields at the top level
	}
	var r relupoState
	if err := json.Unmarshal(own, &r); err != nil {
		return fmt.Errorf("stateful_callbacks.%s: %w", stateCallback, err)
	}
	*s = State(r)
	if ok {
		s.LogHistory, s.EpochFloat = h.LogHistory, h.Epoch
		s.HF = hfSettings{LoggingSteps: h.LoggingSteps, EvalSteps: h.EvalSteps, SaveSteps: h.SaveSteps,
			TrainBatchSize: h.TrainBatchSize, NumTrainEpochs: h.NumTrainEpochs}
	}
	return nil
}
