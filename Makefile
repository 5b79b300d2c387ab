# sluice - build, run, test, bench, fuzz.
# `make run` and `make test` install what they need first (make deps).

CC       ?= cc
PKGS     := libevent libevent_pthreads libevent_openssl openssl libcares libcjson hiredis
PKG_CFLAGS = $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   = $(shell pkg-config --libs $(PKGS) 2>/dev/null)

CFLAGS_BASE := -std=gnu11 -D_GNU_SOURCE -Wall -Wextra -Werror -Wshadow -Wno-unused-parameter \
               -Wstrict-prototypes -Wmissing-prototypes -g
CFLAGS   ?= -O2
ALL_CFLAGS = $(CFLAGS_BASE) $(CFLAGS) $(PKG_CFLAGS)
LDLIBS   = $(PKG_LIBS) -lcrypt -lpthread -lm

ASAN_FLAGS := -O1 -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=undefined

B := build

# Modules linked into the library (everything but the programs' mains).
LIB_SRC  := $(wildcard core/*.c gateway/*.c router/*.c upstream/*.c pool/*.c health/*.c policy/*.c)
LIB_SRC  := $(filter-out gateway/main.c,$(LIB_SRC))
# the test backend shares only the reason-phrase table with the proxy
ECHO_SRC := $(wildcard echo/*.c) core/reason.c
# the translator links only what it uses: its own files, two core helpers,
# cJSON, libyaml, and OpenSSL + pthreads for watch's API client (no libevent)
K8S_SRC  := $(wildcard k8s/*.c) core/nidx.c core/arena.c
K8S_LIBS := $(shell pkg-config --libs libcjson yaml-0.1 2>/dev/null || echo -lcjson -lyaml) -lssl -lcrypto -lpthread -lm
UNIT_SRC := $(wildcard tests/unit/*_test.c)

# the admin listener's dashboard page (GET /ui), compiled in from a C file
# generated at build time
UI_GEN    := $(B)/gen/ui_page.c
LIB_OBJ   := $(LIB_SRC:%.c=$(B)/obj/%.o) $(B)/obj/gen/ui_page.o
ALIB_OBJ  := $(LIB_SRC:%.c=$(B)/asan/obj/%.o) $(B)/asan/obj/gen/ui_page.o
UNIT_BIN  := $(UNIT_SRC:tests/unit/%.c=$(B)/tests/%)
AUNIT_BIN := $(UNIT_SRC:tests/unit/%.c=$(B)/asan/tests/%)

PROGS := $(B)/sluice $(B)/sluice-echo $(B)/sluice-k8s
APROGS := $(B)/asan/sluice $(B)/asan/sluice-echo $(B)/asan/sluice-k8s

.PHONY: all run test bench fuzz clean deps unit asan check-configs
all: $(PROGS)

deps:
	@sh tests/deps.sh

$(B)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -MMD -MP -c $< -o $@

$(B)/asan/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_BASE) $(ASAN_FLAGS) $(PKG_CFLAGS) -MMD -MP -c $< -o $@

# gateway/ui/index.html as a byte array (od is in coreutils: nothing else needed)
$(UI_GEN): gateway/ui/index.html
	@mkdir -p $(dir $@)
	@{ echo '/* generated from gateway/ui/index.html by the Makefile: do not edit */'; \
	  echo '#include <stddef.h>'; \
	  echo 'extern const unsigned char gw_ui_page[];'; \
	  echo 'extern const size_t gw_ui_page_len;'; \
	  echo 'const unsigned char gw_ui_page[] = {'; \
	  od -An -v -tx1 $< | sed -e 's/\([0-9a-f][0-9a-f]\)/0x\1,/g' -e 's/^ *//'; \
	  echo '};'; \
	  echo 'const size_t gw_ui_page_len = sizeof(gw_ui_page);'; } > $@.tmp && mv $@.tmp $@

$(B)/obj/gen/ui_page.o: $(UI_GEN)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -c $< -o $@

$(B)/asan/obj/gen/ui_page.o: $(UI_GEN)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_BASE) $(ASAN_FLAGS) -c $< -o $@

$(B)/libsluice.a: $(LIB_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(B)/asan/libsluice.a: $(ALIB_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(B)/sluice: $(B)/obj/gateway/main.o $(B)/libsluice.a
	$(CC) $(ALL_CFLAGS) -o $@ $^ $(LDLIBS)

$(B)/asan/sluice: $(B)/asan/obj/gateway/main.o $(B)/asan/libsluice.a
	$(CC) $(CFLAGS_BASE) $(ASAN_FLAGS) -o $@ $^ $(LDLIBS)

$(B)/sluice-echo: $(ECHO_SRC:%.c=$(B)/obj/%.o)
	$(CC) $(ALL_CFLAGS) -o $@ $^ $(LDLIBS)

$(B)/asan/sluice-echo: $(ECHO_SRC:%.c=$(B)/asan/obj/%.o)
	$(CC) $(CFLAGS_BASE) $(ASAN_FLAGS) -o $@ $^ $(LDLIBS)

$(B)/sluice-k8s: $(K8S_SRC:%.c=$(B)/obj/%.o)
	$(CC) $(ALL_CFLAGS) -o $@ $^ $(K8S_LIBS)

$(B)/asan/sluice-k8s: $(K8S_SRC:%.c=$(B)/asan/obj/%.o)
	$(CC) $(CFLAGS_BASE) $(ASAN_FLAGS) -o $@ $^ $(K8S_LIBS)

# A unit test #includes the .c files it tests (reaching their statics) and
# is compiled on its own, so each module's tests depend on that module only.
$(B)/tests/%: tests/unit/%.c tests/unit/tap.h tests/cfg_equal.h $(LIB_SRC)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -Wno-missing-prototypes -o $@ $< $(LDLIBS)

# The same tests under ASan+UBSan (tests/run.sh runs both): a config
# reload shares memory between configs, and only the sanitizer sees a
# struct read after the config that held it was freed.
$(B)/asan/tests/%: tests/unit/%.c tests/unit/tap.h tests/cfg_equal.h $(LIB_SRC)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_BASE) $(ASAN_FLAGS) $(PKG_CFLAGS) -Wno-missing-prototypes -o $@ $< $(LDLIBS)

# the translator's test includes k8s/*.c and needs libyaml
$(B)/tests/k8s_test $(B)/asan/tests/k8s_test $(B)/tests/k8s_ctl_test $(B)/asan/tests/k8s_ctl_test: $(K8S_SRC)
$(B)/tests/k8s_test $(B)/asan/tests/k8s_test $(B)/tests/k8s_ctl_test $(B)/asan/tests/k8s_ctl_test: LDLIBS += $(K8S_LIBS)

asan: $(APROGS) $(AUNIT_BIN)
unit: $(UNIT_BIN)

run: deps
	@$(MAKE) --no-print-directory all
	@bash examples/run-demo.sh

test: deps
	@$(MAKE) --no-print-directory all unit asan check-configs
	@sh tests/run.sh

check-configs: $(B)/sluice $(B)/sluice-k8s
	@sh examples/demo-cert.sh
	@for f in examples/*.json deploy/*.json deploy/k8s/*.json; do [ -f "$$f" ] || continue; \
	  $(B)/sluice --check --config $$f || exit 1; done
	@$(B)/sluice-k8s translate -f examples/k8s > $(B)/k8s-example.json && \
	  $(B)/sluice --check --config $(B)/k8s-example.json
	@$(B)/sluice-k8s translate -f deploy/k8s/example/app.yaml > $(B)/k8s-deploy-example.json && \
	  $(B)/sluice --check --config $(B)/k8s-deploy-example.json

bench: deps
	@$(MAKE) --no-print-directory all
	@bash bench/run.sh

FUZZ_SECONDS ?= 60
# the round trip of what sluice forwards (tests/fuzz/fuzz_fwd_*.c)
FWD_SRC := gateway/http1.c gateway/h1_fwd.c router/router.c router/jsonmatch.c core/hdr.c core/reason.c
FUZZ_CFLAGS := -std=gnu11 -D_GNU_SOURCE -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all
fuzz: deps
	@mkdir -p $(B)/fuzz
	clang $(FUZZ_CFLAGS) -o $(B)/fuzz/fuzz_request tests/fuzz/fuzz_request.c gateway/http1.c
	clang $(FUZZ_CFLAGS) -o $(B)/fuzz/fuzz_response tests/fuzz/fuzz_response.c gateway/http1.c
	clang $(FUZZ_CFLAGS) -o $(B)/fuzz/fuzz_chunked tests/fuzz/fuzz_chunked.c gateway/http1.c
	clang $(FUZZ_CFLAGS) $(shell pkg-config --cflags libcjson) -o $(B)/fuzz/fuzz_config tests/fuzz/fuzz_config.c $(shell pkg-config --libs libcjson) -levent -lcrypto -lcrypt -lm
	clang $(FUZZ_CFLAGS) -o $(B)/fuzz/fuzz_fwd_request tests/fuzz/fuzz_fwd_request.c $(FWD_SRC)
	clang $(FUZZ_CFLAGS) -o $(B)/fuzz/fuzz_fwd_response tests/fuzz/fuzz_fwd_response.c $(FWD_SRC)
	clang $(FUZZ_CFLAGS) $(shell pkg-config --cflags libcjson) -o $(B)/fuzz/fuzz_jwt tests/fuzz/fuzz_jwt.c $(shell pkg-config --libs libcjson) -levent -lcrypto -lm
	clang $(FUZZ_CFLAGS) -o $(B)/fuzz/fuzz_usage tests/fuzz/fuzz_usage.c policy/usage.c
	clang $(FUZZ_CFLAGS) $(shell pkg-config --cflags libcjson) -o $(B)/fuzz/fuzz_yaml tests/fuzz/fuzz_yaml.c $(filter-out k8s/main.c,$(K8S_SRC)) $(K8S_LIBS)
	@mkdir -p $(B)/fuzz/corpus_request $(B)/fuzz/corpus_response $(B)/fuzz/corpus_chunked $(B)/fuzz/corpus_config \
	          $(B)/fuzz/corpus_fwd_request $(B)/fuzz/corpus_fwd_response $(B)/fuzz/corpus_yaml $(B)/fuzz/corpus_jwt $(B)/fuzz/corpus_usage
	$(B)/fuzz/fuzz_request  -max_total_time=$(FUZZ_SECONDS) -max_len=4096 -artifact_prefix=$(B)/fuzz/ $(B)/fuzz/corpus_request  tests/fuzz/corpus/request
	$(B)/fuzz/fuzz_response -max_total_time=$(FUZZ_SECONDS) -max_len=4096 -artifact_prefix=$(B)/fuzz/ $(B)/fuzz/corpus_response tests/fuzz/corpus/response
	$(B)/fuzz/fuzz_chunked  -max_total_time=$(FUZZ_SECONDS) -max_len=4096 -artifact_prefix=$(B)/fuzz/ $(B)/fuzz/corpus_chunked  tests/fuzz/corpus/chunked
	$(B)/fuzz/fuzz_config   -max_total_time=$(FUZZ_SECONDS) -max_len=8192 -artifact_prefix=$(B)/fuzz/ $(B)/fuzz/corpus_config   tests/fuzz/corpus/config
	$(B)/fuzz/fuzz_fwd_request  -max_total_time=$(FUZZ_SECONDS) -max_len=8192 -artifact_prefix=$(B)/fuzz/ $(B)/fuzz/corpus_fwd_request  tests/fuzz/corpus/fwd_request
	$(B)/fuzz/fuzz_fwd_response -max_total_time=$(FUZZ_SECONDS) -max_len=8192 -artifact_prefix=$(B)/fuzz/ $(B)/fuzz/corpus_fwd_response tests/fuzz/corpus/fwd_response
	$(B)/fuzz/fuzz_jwt -max_total_time=$(FUZZ_SECONDS) -max_len=9000 -artifact_prefix=$(B)/fuzz/ $(B)/fuzz/corpus_jwt tests/fuzz/corpus/jwt
	$(B)/fuzz/fuzz_usage -max_total_time=$(FUZZ_SECONDS) -max_len=4096 -artifact_prefix=$(B)/fuzz/ $(B)/fuzz/corpus_usage tests/fuzz/corpus/usage
	$(B)/fuzz/fuzz_yaml -max_total_time=$(FUZZ_SECONDS) -max_len=16384 -artifact_prefix=$(B)/fuzz/ $(B)/fuzz/corpus_yaml tests/fuzz/corpus/yaml

clean:
	rm -rf $(B)

-include $(shell find $(B) -name '*.d' 2>/dev/null)
