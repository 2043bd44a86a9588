/* test_keys.c -- SHA-256 against FIPS 180-4's vectors, and API_KEYS_FILE: good lines, each fault named
 * with its line, keys found by their hash, models allowed by glob. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "keys.h"
#include "sha256.h"

static void hex(const unsigned char *d, char out[2 * SHA256_BYTES + 1])
{
    for (size_t i = 0; i < SHA256_BYTES; i++)
        snprintf(out + 2 * i, 3, "%02x", d[i]);
}

static void expect_digest(const char *data, size_t len, const char *want)
{
    unsigned char d[SHA256_BYTES];
    char got[2 * SHA256_BYTES + 1];

    sha256(data, len, d);
    hex(d, got);
    cr_expect_str_eq(got, want, "SHA-256 of %zu bytes", len);
}

Test(sha256, fips_180_vectors)
{
    expect_digest("", 0, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    expect_digest("abc", 3, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    expect_digest("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq", 56,
                  "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
    expect_digest("abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmnoijklmnopjklmnopqklmnopqrlmnopqrs"
                  "mnopqrstnopqrstu", 112, "cf5b16a778af8380036ce59e7b0492370b249b11e8f07a51afac45037afee9d1");
}

/* Lengths around the block's end, where the padding takes one block or two. */
Test(sha256, padding_at_block_boundaries)
{
    static const struct {
        size_t n;
        const char *digest;
    } cases[] = {
        { 55, "9f4390f8d30c2dd92ec9f095b65e2b9ae9b0a925a5258e241c9f1e910f734318" },
        { 56, "b35439a4ac6f0948b6d6f9e3c6af0f5f590ce20f1bde7090ef7970686ec6738a" },
        { 63, "7d3e74a05d7db15bce4ad9ec0658ea98e3f06eeecf16b4c6fff2da457ddc2f34" },
        { 64, "ffe054fe7ae0cb6dc65c3af9b61d5209f439851db43d0ba5997337df154668eb" },
        { 65, "635361c48bb9eab14198e76ea8ab7f1a41685d6ad62aa9146d301d4f17eb0ae0" },
        { 119, "31eba51c313a5c08226adf18d4a359cfdfd8d2e816b13f4af952f7ea6584dcfb" },
        { 120, "2f3d335432c70b580af0e8e1b3674a7c020d683aa5f73aaaedfdc55af904c21c" },
    };
    char a[128];

    memset(a, 'a', sizeof a);
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++)
        expect_digest(a, cases[i].n, cases[i].digest);
}

/* A million 'a's, fed in pieces that straddle every block boundary differently. */
Test(sha256, a_million_a_in_uneven_pieces)
{
    struct sha256 s;
    unsigned char d[SHA256_BYTES];
    char got[2 * SHA256_BYTES + 1], piece[997];
    size_t left = 1000000;

    memset(piece, 'a', sizeof piece);
    sha256_init(&s);
    for (size_t n = 1; left > 0; n = (n * 7 + 13) % sizeof piece + 1) {
        size_t take = n < left ? n : left;

        sha256_update(&s, piece, take);
        left -= take;
    }
    sha256_final(&s, d);
    hex(d, got);
    cr_expect_str_eq(got, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

#define ABC "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
#define EMPTY "sha256:E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855"

Test(keys, good_lines)
{
    static const char text[] = "# the team\n"
                               "\n"
                               "alice " ABC "   # every model\n"
                               "bob.smith@example.org\t" EMPTY " models=qwen3*,llama3.2:3b max_streams=2\r\n"
                               "   \n"
                               "carol sha256:2f3d335432c70b580af0e8e1b3674a7c020d683aa5f73aaaedfdc55af904c21c max_streams=1";
    struct keys k;
    char err[256] = "";

    cr_assert_eq(keys_parse(text, sizeof text - 1, &k, err, sizeof err), 0, "%s", err);
    cr_assert_eq(k.n, 3);
    cr_expect_str_eq(k.entries[0].name, "alice");
    cr_expect_null(k.entries[0].models);
    cr_expect_eq(k.entries[0].max_streams, 0);
    cr_expect_str_eq(k.entries[1].name, "bob.smith@example.org");
    cr_expect_eq(k.entries[1].n_models, 2);
    cr_expect_str_eq(k.entries[1].models[0], "qwen3*");
    cr_expect_str_eq(k.entries[1].models[1], "llama3.2:3b");
    cr_expect_eq(k.entries[1].max_streams, 2);
    cr_expect_eq(k.entries[2].max_streams, 1);
    /* Found by the key itself, whatever case its hash was written in. */
    cr_expect_eq(keys_find(&k, "abc"), &k.entries[0]);
    cr_expect_eq(keys_find(&k, ""), &k.entries[1]);
    cr_expect_null(keys_find(&k, "abd"));
    cr_expect_null(keys_find(&k, ABC));
    keys_free(&k);
}

Test(keys, models_allowed_by_glob_and_latest)
{
    static const char text[] = "bob " ABC " models=qwen3*,llama3.2";
    struct keys k;
    char err[256] = "";

    cr_assert_eq(keys_parse(text, sizeof text - 1, &k, err, sizeof err), 0, "%s", err);
    cr_expect(keys_allow_model(&k.entries[0], "qwen3:4b"));
    cr_expect(keys_allow_model(&k.entries[0], "qwen3"));
    cr_expect(keys_allow_model(&k.entries[0], "llama3.2"));
    cr_expect(keys_allow_model(&k.entries[0], "llama3.2:latest"));
    cr_expect_not(keys_allow_model(&k.entries[0], "llama3.2:1b"));
    cr_expect_not(keys_allow_model(&k.entries[0], "gpt-oss:20b"));
    cr_expect_not(keys_allow_model(&k.entries[0], "my-qwen3"));
    keys_free(&k);
}

/* Every fault, with the line it is on, and never the text of a field that could be a key or its hash. */
Test(keys, each_fault_named_with_its_line)
{
    static const struct {
        const char *text;
        const char *error;
    } cases[] = {
        { "alice", "line 1: after the name comes sha256:" },
        { "# x\nalice sha256:abc", "line 2: after the name comes sha256:" },
        { "\n\nalice md5:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad", "line 3: after the name" },
        { "alice sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015aX", "line 1: after the name" },
        { "alice " ABC "0", "line 1: after the name" },
        { "al ice " ABC, "line 1: after the name" },
        { "al/ice " ABC, "line 1: the name must be" },
        { "ofk_Zx8DkLq2 " ABC, "line 1: the name looks like a key" },
        { "a234567890123456789012345678901234567890123456789012345678901234 " ABC, "line 1: the name must be" },
        { "alice " ABC " models=", "line 1: models= takes globs" },
        { "alice " ABC " models=a,,b", "line 1: models= takes globs" },
        { "alice " ABC " models=a,", "line 1: models= takes globs" },
        { "alice " ABC " models=a models=b", "line 1: models= is given twice" },
        { "alice " ABC " max_streams=0", "line 1: max_streams= takes a number from 1" },
        { "alice " ABC " max_streams=2x", "line 1: max_streams= takes a number from 1" },
        { "alice " ABC " max_streams=1025", "line 1: max_streams= takes a number from 1" },
        { "alice " ABC " max_streams=1 max_streams=1", "line 1: max_streams= is given twice" },
        { "alice " ABC " ofk_Zx8DkLq2", "line 1: field 3 is neither" },
        { "alice " ABC " max=3", "line 1: field 3 is neither" },
        { "alice " ABC " a b c d e f g", "line 1: too many fields" },
        { "alice " ABC "\nbob " EMPTY "\nalice " EMPTY, "line 3: the name is on line 1 too" },
        { "alice " ABC "\n\nbob " ABC, "line 3: the same key as line 1" },
    };

    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        struct keys k;
        char err[256] = "";

        cr_expect_eq(keys_parse(cases[i].text, strlen(cases[i].text), &k, err, sizeof err), -1, "accepted: %s",
                     cases[i].text);
        cr_expect(strncmp(err, cases[i].error, strlen(cases[i].error)) == 0, "%s: said \"%s\"", cases[i].text, err);
        cr_expect(strstr(err, "ofk_") == NULL && strstr(err, "ba7816") == NULL && strstr(err, "E3B0") == NULL,
                  "the error quotes a key or a hash: %s", err);
        cr_expect_eq(k.n, 0);
    }
}

Test(keys, a_nul_byte_is_a_fault)
{
    static const char text[] = "alice " ABC "\nbob\0 " EMPTY;
    struct keys k;
    char err[256] = "";

    cr_expect_eq(keys_parse(text, sizeof text - 1, &k, err, sizeof err), -1);
    cr_expect_str_eq(err, "line 2: a NUL byte");
}

Test(keys, adapter_api_key_is_named_default_beside_the_file)
{
    char path[] = "/tmp/keys-test-XXXXXX", err[512] = "";
    int fd = mkstemp(path);
    struct keys k;
    FILE *f;

    cr_assert(fd >= 0);
    f = fdopen(fd, "w");
    fputs("alice " ABC " models=qwen3*\n", f);
    fclose(f);
    cr_assert_eq(keys_load(path, "the shared key", &k, err, sizeof err), 0, "%s", err);
    cr_expect(k.required);
    cr_expect_eq(k.n, 2);
    cr_expect_str_eq(keys_find(&k, "the shared key")->name, KEYS_DEFAULT_NAME);
    cr_expect(keys_allow_model(keys_find(&k, "the shared key"), "anything"));
    cr_expect_str_eq(keys_find(&k, "abc")->name, "alice");
    keys_free(&k);
    /* The same key in the file and in ADAPTER_API_KEY is refused: whose would it be? */
    cr_expect_eq(keys_load(path, "abc", &k, err, sizeof err), -1);
    cr_expect(strstr(err, "ADAPTER_API_KEY") != NULL, "%s", err);
    unlink(path);
    cr_expect_eq(keys_load(path, NULL, &k, err, sizeof err), -1);
    cr_expect(strstr(err, "API_KEYS_FILE=/tmp/keys-test-") != NULL && strstr(err, "No such file") != NULL, "%s", err);
    /* Without either, no key is needed. */
    cr_expect_eq(keys_load(NULL, NULL, &k, err, sizeof err), 0);
    cr_expect_not(k.required);
    keys_free(&k);
}

Test(keys, a_new_key_is_random_base62_and_its_line_parses)
{
    char a[KEYS_NEW_SIZE], b[KEYS_NEW_SIZE], hexd[2 * SHA256_BYTES + 1], line[200], err[256] = "";
    struct keys k;

    cr_assert_eq(keys_generate(a, sizeof a), 0);
    cr_assert_eq(keys_generate(b, sizeof b), 0);
    cr_expect_eq(strlen(a), 44);
    cr_expect(strncmp(a, "ofk_", 4) == 0);
    cr_expect_eq(strspn(a + 4, "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"), 40);
    cr_expect_str_neq(a, b);
    keys_hash_hex(a, hexd);
    snprintf(line, sizeof line, "alice sha256:%s\n", hexd);
    cr_assert_eq(keys_parse(line, strlen(line), &k, err, sizeof err), 0, "%s", err);
    cr_expect_not_null(keys_find(&k, a));
    cr_expect_null(keys_find(&k, b));
    keys_free(&k);
}
