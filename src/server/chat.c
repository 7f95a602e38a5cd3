/* Chat prompts. GGUF files carry a Jinja template in tokenizer.chat_template; rather than run
 * Jinja, the template is recognised by the markers it uses and rendered by a small writer for
 * that family (ChatML, Llama 3, Llama 2 [INST], Zephyr). A model without a template gets
 * ChatML. */
#include "server/internal.h"

#include <string.h>

const char *srv_chat_kind(const lb_model *m)
{
    const char *t = m->tok ? m->tok->chat_template : NULL;
    if (!t)
        return "chatml";
    if (strstr(t, "<|start_header_id|>"))
        return "llama3";
    if (strstr(t, "<|im_start|>"))
        return "chatml";
    if (strstr(t, "[INST]"))
        return "llama2";
    if (strstr(t, "<|user|>") || strstr(t, "<|assistant|>"))
        return "zephyr";
    return "chatml";
}

/* Text of a message's content: a string, or an array of {"type": "text", "text": ...} parts. */
static int content_text(json_t *content, size_t i, lb_buf *out, char *param, size_t cap, lb_error *err)
{
    if (json_is_string(content)) {
        lb_buf_append(out, json_string_value(content), strlen(json_string_value(content)));
        return 0;
    }
    if (json_is_array(content)) {
        for (size_t k = 0; k < json_array_size(content); k++) {
            json_t *part = json_array_get(content, k);
            json_t *type = json_object_get(part, "type"), *text = json_object_get(part, "text");
            if (!json_is_object(part) || !json_is_string(type) || strcmp(json_string_value(type), "text") != 0 ||
                !json_is_string(text)) {
                snprintf(param, cap, "messages[%zu].content[%zu]", i, k);
                return lb_fail(err, "messages[%zu].content[%zu] must be {\"type\": \"text\", \"text\": STRING}", i, k);
            }
            lb_buf_append(out, json_string_value(text), strlen(json_string_value(text)));
        }
        return 0;
    }
    snprintf(param, cap, "messages[%zu].content", i);
    return lb_fail(err, "messages[%zu].content must be a string or an array of text parts", i);
}

int srv_chat_render(const char *kind, json_t *messages, lb_buf *out, const char **stop,
                    char *param, size_t cap, lb_error *err)
{
    snprintf(param, cap, "messages");
    if (!json_is_array(messages) || json_array_size(messages) == 0)
        return lb_fail(err, "field 'messages' must be a non-empty array of {role, content}");
    if (json_array_size(messages) > 1024)
        return lb_fail(err, "field 'messages' has %zu entries, at most 1024 are allowed", json_array_size(messages));
    lb_buf sys = {0};
    int rc = 0;
    bool first_user = true;
    for (size_t i = 0; i < json_array_size(messages) && rc == 0; i++) {
        json_t *msg = json_array_get(messages, i);
        if (!json_is_object(msg)) {
            snprintf(param, cap, "messages[%zu]", i);
            rc = lb_fail(err, "messages[%zu] must be an object with role and content", i);
            break;
        }
        const char *key;
        json_t *v;
        json_object_foreach(msg, key, v) if (strcmp(key, "role") && strcmp(key, "content") && strcmp(key, "name")) {
            snprintf(param, cap, "messages[%zu].%.100s", i, key);
            rc = lb_fail(err, "unknown field 'messages[%zu].%.100s'", i, key);
            break;
        }
        if (rc)
            break;
        json_t *role = json_object_get(msg, "role");
        const char *r = json_is_string(role) ? json_string_value(role) : "";
        if (strcmp(r, "developer") == 0)
            r = "system";
        if (strcmp(r, "system") && strcmp(r, "user") && strcmp(r, "assistant")) {
            snprintf(param, cap, "messages[%zu].role", i);
            rc = lb_fail(err, "messages[%zu].role must be \"system\", \"user\" or \"assistant\"", i);
            break;
        }
        lb_buf text = {0};
        rc = content_text(json_object_get(msg, "content"), i, &text, param, cap, err);
        lb_buf_cstr(&text);
        if (rc) {
            lb_buf_free(&text);
            break;
        }
        if (strcmp(kind, "llama3") == 0) {
            lb_buf_appendf(out, "<|start_header_id|>%s<|end_header_id|>\n\n%s<|eot_id|>", r, text.v);
        } else if (strcmp(kind, "llama2") == 0) {
            /* The system prompt goes inside the first [INST] block. */
            if (strcmp(r, "system") == 0) {
                lb_buf_appendf(&sys, "<<SYS>>\n%s\n<</SYS>>\n\n", text.v);
            } else if (strcmp(r, "user") == 0) {
                lb_buf_appendf(out, "%s[INST] %s%s [/INST]", first_user ? "" : "<s>",
                               first_user && sys.n ? lb_buf_cstr(&sys) : "", text.v);
                first_user = false;
            } else {
                lb_buf_appendf(out, " %s </s>", text.v);
            }
        } else if (strcmp(kind, "zephyr") == 0) {
            lb_buf_appendf(out, "<|%s|>\n%s</s>\n", r, text.v);
        } else {
            lb_buf_appendf(out, "<|im_start|>%s\n%s<|im_end|>\n", r, text.v);
        }
        lb_buf_free(&text);
    }
    lb_buf_free(&sys);
    if (rc)
        return -1;
    if (strcmp(kind, "llama3") == 0) {
        lb_buf_appendf(out, "<|start_header_id|>assistant<|end_header_id|>\n\n");
        *stop = "<|eot_id|>";
    } else if (strcmp(kind, "llama2") == 0) {
        *stop = "[INST]";
    } else if (strcmp(kind, "zephyr") == 0) {
        lb_buf_appendf(out, "<|assistant|>\n");
        *stop = "</s>";
    } else {
        lb_buf_appendf(out, "<|im_start|>assistant\n");
        *stop = "<|im_end|>";
    }
    lb_buf_cstr(out);
    return 0;
}
