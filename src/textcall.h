/* textcall.h -- tool calls a model wrote as text instead of calling them, recovered as real calls at the
 * end of its reply, while every byte that cannot belong to one streams on at once. */
#ifndef OF_TEXTCALL_H
#define OF_TEXTCALL_H

#include <json-c/json.h>
#include <stddef.h>

#include "buf.h"

/* The formats, as TEXT_TOOL_CALLS names them. */
enum textcall_format {
    TEXTCALL_JSON = 1 << 0,       /* json: a bare {"name": …, "arguments"|"parameters": …}, or an array of them */
    TEXTCALL_HERMES = 1 << 1,     /* hermes: <tool_call>{…}</tool_call> */
    TEXTCALL_QWEN3 = 1 << 2,      /* qwen3: <function=NAME><parameter=P>…</parameter></function>, <tool_call> or not */
    TEXTCALL_LLAMA = 1 << 3,      /* llama: <|python_tag|>{…} */
    TEXTCALL_MISTRAL = 1 << 4,    /* mistral: [TOOL_CALLS] [{…}] or [TOOL_CALLS]NAME[ARGS]{…} */
    TEXTCALL_FENCE = 1 << 5,      /* fence: any of these in a ```json (or ```, ```xml, ```tool_call) fence */
};
#define TEXTCALL_ALL 0x3f
#define TEXTCALL_N_FORMATS 6

/* "auto", "off", or a list of format names separated by commas or spaces. Returns 0 with *mask set, or -1
 * with the unknown name in err. */
int textcall_parse_formats(const char *list, unsigned *mask, char *err, size_t errlen);
/* The name of format bit i (0 ≤ i < TEXTCALL_N_FORMATS). */
const char *textcall_format_name(int i);

struct textcall {
    unsigned formats;
    struct textcall_tool {
        const char *name;         /* borrowed from tools */
        struct json_object *props;/* its parameters' properties object (or NULL), borrowed */
        size_t order;             /* its place among the tools offered: of two of one name, the first counts */
    } *tools;                     /* the offered tools, sorted by name, so that a name is looked up, not scanned */
    size_t n_tools;
    size_t name_lo, name_hi;      /* the tools whose names begin with the name_len bytes read from name_start */
    size_t name_len;
    size_t max_held;
    int state;
    int wrap;                     /* the marker the current calls sit in: none, <tool_call> or a fence */
    int unit_format;              /* the format the next call is counted as */
    unsigned char prev;           /* the byte before the next one, for "at the start of a word or line" */
    const char *lit;              /* the rest of a marker being matched */
    int lit_next;                 /* the state once it matched */
    int unit_kind;                /* a JSON call, an array of them, or Mistral's arguments */
    int bracket_word;             /* the '[' read stood at the start of a word */
    size_t unit_start;            /* where the call being read starts in held */
    size_t unit_name_end;         /* where Mistral's NAME[ARGS] name ends in held */
    size_t name_start;            /* where a name being read starts in held */
    size_t fence_lang;            /* where a fence's language starts in held */
    size_t close_match;           /* how much of "</parameter>" ends the held text */
    struct textcall_json {
        int st;
        int depth;
        int call_depth;           /* the depth whose object keys are checked, 0 for none */
        int is_key;
        int in_name;              /* reading the value of "name" */
        int key;                  /* the call key whose value comes next */
        int hex_left;
        const char *lit;
        size_t key_start;
        unsigned char kinds[64];  /* '{' or '[' for every open level */
    } json;
    struct buf held;              /* from the first byte of a possible call on */
    struct buf out;               /* text released by the latest call */
    struct json_object *calls;    /* the calls recovered so far from held, Ollama-shaped; owned */
    unsigned found;               /* the formats those calls were written in */
};

/* tools is the Ollama tools array offered (borrowed, and must outlive t); formats is the mask to
 * recover; max_held bounds the text held back, past which it is released as text. */
void textcall_init(struct textcall *t, struct json_object *tools, unsigned formats, size_t max_held);
void textcall_free(struct textcall *t);
/* The next text of the reply. *out and *out_len are set to the text to send now (valid until the next
 * call); text that could still be a call is held back. */
void textcall_feed(struct textcall *t, const char *s, size_t n, const char **out, size_t *out_len);
/* The reply ended. Returns the recovered calls (an array of Ollama tool calls the caller puts) with their
 * formats in *found, or NULL with whatever was held back in *out, to send as text. */
struct json_object *textcall_end(struct textcall *t, const char **out, size_t *out_len, unsigned *found);

#endif
