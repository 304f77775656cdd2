# The two commands of the README. Both set everything up first (idempotent).
.PHONY: run test setup bench

run:            ## set up, then start the app on its defaults
	scripts/setup.sh app
	scripts/run-app.sh

test:           ## set up (with test tools), then run the whole test suite under a virtual display
	scripts/setup.sh test
	scripts/run-tests.sh

bench:          ## encoder benchmark against openai-whisper's own encoder
	scripts/setup.sh app
	.venv/bin/npu-whisper bench --model base
