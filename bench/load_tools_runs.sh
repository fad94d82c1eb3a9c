# One run of each Python load tool, shared by bench/load_tools.sh (the side-by-side benchmark)
# and deploy/tests/load_tools.sh (the suite's smoke test), so both drive the tools the same
# way. Source it; the callers set TOOLS_BIN (bench/setup_load_tools.sh's output), TOKENIZER,
# INPUT_LEN and OUTPUT_LEN. Every run streams /v1/completions with fixed prompt and output
# lengths (`ignore_eos`) and no temperature, so the server samples at its default.

# inference_perf_run DIR BASE_URL MODEL REQUESTS CONCURRENCY TIMEOUT REQUEST_TIMEOUT: its
# summary reports land in DIR.
inference_perf_run() {
  local dir=$1 base=$2 model=$3 n=$4 c=$5 timeout=$6 request_timeout=$7
  mkdir -p "$dir"
  cat >"$dir/config.yml" <<YAML
api: {type: completion, streaming: true}
server: {type: vllm, model_name: $model, base_url: "$base", ignore_eos: true}
tokenizer: {pretrained_model_name_or_path: "$TOKENIZER"}
data:
  type: random
  input_distribution: {type: fixed, min: $INPUT_LEN, max: $INPUT_LEN, mean: $INPUT_LEN, std_dev: 0}
  output_distribution: {type: fixed, min: $OUTPUT_LEN, max: $OUTPUT_LEN, mean: $OUTPUT_LEN, std_dev: 0}
load:
  type: concurrent
  num_workers: 1
  stages: [{num_requests: $n, concurrency_level: $c}]
  request_timeout: $request_timeout
report:
  request_lifecycle: {summary: true, per_stage: false, per_request: false}
  prometheus: {summary: false, per_stage: false}
storage: {local_storage: {path: "$dir"}}
YAML
  (cd "$dir" && timeout "$timeout" "$TOOLS_BIN/inference-perf" --config_file config.yml)
}

# guidellm_run DIR BASE_URL MODEL REQUESTS CONCURRENCY TIMEOUT: DIR/benchmarks.json.
guidellm_run() {
  local dir=$1 base=$2 model=$3 n=$4 c=$5 timeout=$6
  mkdir -p "$dir"
  timeout "$timeout" "$TOOLS_BIN/guidellm" run \
    --backend "kind=openai_http,target=$base,model=$model,request_format=/v1/completions" \
    --profile "kind=concurrent,streams=$c" \
    --constraint "kind=max_requests,count=$n" \
    --data "kind=synthetic_text,prompt_tokens=$INPUT_LEN,output_tokens=$OUTPUT_LEN" \
    --tokenizer "kind=huggingface_auto,model=$TOKENIZER" \
    --output "kind=json,path=$dir/benchmarks.json" \
    --disable-console-interactive
}
