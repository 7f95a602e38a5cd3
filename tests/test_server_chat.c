/* Server pieces that need no socket: chat templates recognised from tokenizer metadata and
 * rendered as each family's published format writes them, chat message validation naming the
 * field, UTF-8 handling of streamed text (never split a character, never emit invalid JSON
 * strings), and settings from the environment. */
#include "check.h"
#include "server/internal.h"

#include <stdlib.h>
#include <string.h>

static const char *kind_of(const char *template)
{
    lb_tokenizer tok;
    memset(&tok, 0, sizeof tok);
    tok.chat_template = (char *)template;
    lb_model m;
    memset(&m, 0, sizeof m);
    m.tok = &tok;
    return srv_chat_kind(&m);
}

/* Renders a JSON message list; returns the prompt (malloc'd) or NULL with param/err set. */
static char *render(const char *kind, const char *messages_json, const char **stop, char *param,
                    lb_error *err)
{
    json_error_t je;
    json_t *msgs = json_loads(messages_json, 0, &je);
    if (!msgs) {
        fprintf(stderr, "bad test JSON: %s\n", je.text);
        exit(1);
    }
    lb_buf out = {0};
    int rc = srv_chat_render(kind, msgs, &out, stop, param, 128, err);
    json_decref(msgs);
    if (rc) {
        lb_buf_free(&out);
        return NULL;
    }
    return lb_buf_cstr(&out);
}

static void expect_render(const char *kind, const char *msgs, const char *want, const char *want_stop)
{
    const char *stop = NULL;
    char param[128];
    lb_error err;
    char *got = render(kind, msgs, &stop, param, &err);
    CHECK(got && strcmp(got, want) == 0, "%s: got [%s], want [%s]", kind, got ? got : err.msg, want);
    CHECK(stop && strcmp(stop, want_stop) == 0, "%s stop: %s", kind, stop ? stop : "(none)");
    free(got);
}

static void expect_refused(const char *msgs, const char *want_param)
{
    const char *stop = NULL;
    char param[128] = "";
    lb_error err = {{0}};
    char *got = render("chatml", msgs, &stop, param, &err);
    CHECK(!got, "accepted %s", msgs);
    free(got);
    CHECK(strcmp(param, want_param) == 0, "%s: param %s, want %s", msgs, param, want_param);
    CHECK(err.msg[0] && !strchr(err.msg, '\n'), "one-line message: %s", err.msg);
}

int main(void)
{
    /* Families, from fragments of the templates real GGUF files carry. */
    CHECK(strcmp(kind_of(NULL), "chatml") == 0, "no template: ChatML");
    CHECK(strcmp(kind_of("{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}"), "chatml") == 0, "Qwen2");
    CHECK(strcmp(kind_of("{% set content = '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n'+ message['content'] | trim + '<|eot_id|>' %}"), "llama3") == 0, "Llama 3");
    CHECK(strcmp(kind_of("{{ bos_token + '[INST] ' + content.strip() + ' [/INST]' }}"), "llama2") == 0, "Llama 2");
    CHECK(strcmp(kind_of("{% if message['role'] == 'user' %}{{ '<|user|>\\n' + message['content'] + eos_token }}"), "zephyr") == 0, "Zephyr/TinyLlama");
    CHECK(strcmp(kind_of("{{ something else }}"), "chatml") == 0, "unknown: ChatML");

    const char *conv = "[{\"role\": \"system\", \"content\": \"Be brief.\"}, {\"role\": \"user\", \"content\": \"Hi\"}]";
    expect_render("chatml", conv,
                  "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n",
                  "<|im_end|>");
    expect_render("llama3", conv,
                  "<|start_header_id|>system<|end_header_id|>\n\nBe brief.<|eot_id|>"
                  "<|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>"
                  "<|start_header_id|>assistant<|end_header_id|>\n\n",
                  "<|eot_id|>");
    expect_render("llama2", conv, "[INST] <<SYS>>\nBe brief.\n<</SYS>>\n\nHi [/INST]", "[INST]");
    expect_render("zephyr", conv, "<|system|>\nBe brief.</s>\n<|user|>\nHi</s>\n<|assistant|>\n", "</s>");
    expect_render("llama2",
                  "[{\"role\": \"user\", \"content\": \"Hi\"}, {\"role\": \"assistant\", \"content\": \"Hello\"},"
                  " {\"role\": \"user\", \"content\": \"More\"}]",
                  "[INST] Hi [/INST] Hello </s><s>[INST] More [/INST]", "[INST]");
    /* content as text parts; "developer" is the newer name of "system" */
    expect_render("chatml",
                  "[{\"role\": \"developer\", \"content\": \"S\"}, {\"role\": \"user\", \"content\": "
                  "[{\"type\": \"text\", \"text\": \"a\"}, {\"type\": \"text\", \"text\": \"b\"}], \"name\": \"x\"}]",
                  "<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nab<|im_end|>\n<|im_start|>assistant\n",
                  "<|im_end|>");

    expect_refused("{}", "messages");
    expect_refused("[]", "messages");
    expect_refused("[5]", "messages[0]");
    expect_refused("[{\"role\": \"user\", \"content\": \"a\"}, {\"role\": \"robot\", \"content\": \"b\"}]", "messages[1].role");
    expect_refused("[{\"content\": \"b\"}]", "messages[0].role");
    expect_refused("[{\"role\": \"user\"}]", "messages[0].content");
    expect_refused("[{\"role\": \"user\", \"content\": null}]", "messages[0].content");
    expect_refused("[{\"role\": \"user\", \"content\": [{\"type\": \"image_url\", \"image_url\": \"x\"}]}]", "messages[0].content[0]");
    expect_refused("[{\"role\": \"user\", \"content\": \"a\", \"tool_calls\": []}]", "messages[0].tool_calls");

    /* UTF-8: a stream never ends a chunk inside a character. "é" is C3 A9, "€" E2 82 AC,
     * "𝄞" F0 9D 84 9E. */
    const char *s = "h\xC3\xA9\xE2\x82\xAC\xF0\x9D\x84\x9E";
    size_t full = strlen(s);
    CHECK(srv_utf8_complete(s, full) == full, "whole text");
    CHECK(srv_utf8_complete(s, 2) == 1, "cut inside é: %zu", srv_utf8_complete(s, 2));
    CHECK(srv_utf8_complete(s, 3) == 3, "after é");
    CHECK(srv_utf8_complete(s, 4) == 3 && srv_utf8_complete(s, 5) == 3, "cut inside €");
    CHECK(srv_utf8_complete(s, 7) == 6 && srv_utf8_complete(s, 9) == 6, "cut inside the clef");
    CHECK(srv_utf8_complete("", 0) == 0, "empty");
    CHECK(srv_utf8_complete("\x80\x80\x80\x80\x80", 5) == 5, "stray continuation bytes are not waited on");

    /* Generated bytes that are not UTF-8 become U+FFFD, so the JSON is always valid. */
    json_t *j = srv_json_text("a\xFF" "b\xC3", 4);
    CHECK(j && strcmp(json_string_value(j), "a\xEF\xBF\xBD" "b\xEF\xBF\xBD") == 0, "replacement: %s",
          j ? json_string_value(j) : "(null)");
    json_decref(j);
    j = srv_json_text("\xED\xA0\x80", 3);   /* a UTF-16 surrogate encoded in UTF-8 */
    CHECK(j && json_string_length(j) == 9, "surrogate bytes replaced one by one");
    json_decref(j);
    j = srv_json_text(s, full);
    CHECK(j && strcmp(json_string_value(j), s) == 0, "valid text kept");
    json_decref(j);

    /* Settings from the environment, as the original service took them. */
    srv_config cfg;
    lb_error err;
    unsetenv("SERVER_ADDR");
    unsetenv("BASELINE_MODEL_PATH");
    unsetenv("QUANTIZED_MODEL_PATH");
    unsetenv("MAX_NEW_TOKENS");
    unsetenv("TEMPERATURE");
    unsetenv("TOP_K");
    unsetenv("LOWBIT_API_KEY");
    CHECK(srv_config_from_env(&cfg, &err) == 0, "defaults: %s", err.msg);
    CHECK(strcmp(cfg.addr, "127.0.0.1:8080") == 0 && cfg.max_new_tokens == 64 &&
          cfg.temperature == 0.8f && cfg.top_k == 40 && !cfg.api_key && !cfg.baseline_path,
          "defaults as the original service");
    setenv("SERVER_ADDR", "127.0.0.1:9999", 1);
    setenv("BASELINE_MODEL_PATH", "/m/base.gguf", 1);
    setenv("QUANTIZED_MODEL_PATH", "/m/q.gguf", 1);
    setenv("MAX_NEW_TOKENS", "12", 1);
    setenv("TEMPERATURE", "0", 1);
    setenv("TOP_K", "5", 1);
    setenv("LOWBIT_API_KEY", "k", 1);
    CHECK(srv_config_from_env(&cfg, &err) == 0, "env: %s", err.msg);
    CHECK(strcmp(cfg.addr, "127.0.0.1:9999") == 0 && strcmp(cfg.baseline_path, "/m/base.gguf") == 0 &&
          strcmp(cfg.quantized_path, "/m/q.gguf") == 0 && cfg.max_new_tokens == 12 &&
          cfg.temperature == 0.0f && cfg.top_k == 5 && strcmp(cfg.api_key, "k") == 0, "env values");
    const char *bad[][2] = {{"MAX_NEW_TOKENS", "0"}, {"MAX_NEW_TOKENS", "12x"}, {"TEMPERATURE", "-1"},
                            {"TEMPERATURE", "hot"}, {"TOP_K", "-3"}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        setenv("MAX_NEW_TOKENS", "12", 1);
        setenv("TEMPERATURE", "0", 1);
        setenv("TOP_K", "5", 1);
        setenv(bad[i][0], bad[i][1], 1);
        CHECK(srv_config_from_env(&cfg, &err) == -1 && strstr(err.msg, bad[i][0]), "%s=%s refused: %s",
              bad[i][0], bad[i][1], err.msg);
    }
    return check_finish("test_server_chat");
}
