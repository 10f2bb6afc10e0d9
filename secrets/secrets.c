/* SPDX-License-Identifier: MIT */
/*
 * Secret files and the node's password. A secret is read with read(2) into one buffer that this module owns from
 * start to end, never through stdio: a FILE's buffer would hold a copy that fclose() frees without wiping.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "init.h"
#include "secrets.h"

/* Memory that may hold secret bytes: the whole allocation is wiped before it is freed, not only what was used. */
struct wipe_buf {
	char *data;
	size_t size;
};

static void wipe_buf_free(struct wipe_buf *b)
{
	if (!b->data)
		return;
	explicit_bzero(b->data, b->size);
	free(b->data);
	b->data = NULL;
}

#define _cleanup_wipe_ _cleanup_(wipe_buf_free)

void secrets_wipe(struct secrets_value *v)
{
	if (v->data) {
		explicit_bzero(v->data, v->len + 1);
		free(v->data);
	}
	*v = (struct secrets_value){0};
}

int secrets_value_copy(const char *data, size_t len, struct secrets_value *ret)
{
	char *copy = malloc(len + 1);

	if (!copy)
		return -ENOMEM;
	memcpy(copy, data, len);
	copy[len] = '\0';
	*ret = (struct secrets_value){.data = copy, .len = len};
	return 0;
}

bool secrets_value_equal(const struct secrets_value *a, const struct secrets_value *b)
{
	return a->len == b->len && (a->len == 0 || memcmp(a->data, b->data, a->len) == 0);
}

void secrets_password_free(struct secrets_password *p)
{
	secrets_wipe(&p->value);
	free(p->path);
	*p = (struct secrets_password){0};
}

const char *secrets_strerror(int r)
{
	return init_value_strerror(r);
}

int secrets_read_file(const char *path, struct secrets_value *ret_value, bool *ret_world_readable)
{
	/* The whole buffer is wiped on failure: init_read_value_file may have left part of the file in it. */
	_cleanup_wipe_ struct wipe_buf buf = {.size = INIT_VALUE_MAX + 2};
	struct stat st;
	int n;

	buf.data = malloc(buf.size);
	if (!buf.data)
		return -ENOMEM;
	n = init_read_value_file(path, INIT_READ_BENEATH, buf.data, &st);
	if (n < 0)
		return n;
	if (ret_world_readable)
		*ret_world_readable = (st.st_mode & S_IROTH) != 0;
	/* The value keeps the read buffer: a copy would be one more place the secret has been. */
	*ret_value = (struct secrets_value){.data = buf.data, .len = (size_t)n};
	buf.data = NULL;
	return 0;
}

/* The value of name in envp; an empty value counts as unset, as compose files write "VAR=" for "not given". */
static const char *env_get(char *const *envp, const char *name)
{
	const char *v = init_env_lookup(envp, name);

	return v && *v ? v : NULL;
}

static int load_file(const char *path, enum secrets_source source, struct secrets_password *ret, struct init_error *err)
{
	_cleanup_(secrets_wipe) struct secrets_value value = {0};
	char shown[320];
	bool world_readable = false;
	char *copy;
	int r;

	r = secrets_read_file(path, &value, &world_readable);
	if (r == -ENOENT && source == SECRETS_SRC_DEFAULT_FILE)
		return r; /* the caller moves on to the next source */
	init_escape_control(shown, sizeof(shown), path);
	if (r < 0 && source == SECRETS_SRC_FILE)
		return init_error_set(err, r, "REDIS_PASSWORD_FILE='%s': %s", shown, secrets_strerror(r));
	if (r < 0)
		return init_error_set(err, r, "password file '%s': %s", shown, secrets_strerror(r));
	copy = strdup(path);
	if (!copy)
		return init_error_set(err, -ENOMEM, "out of memory");
	*ret = (struct secrets_password){
		.value = value,
		.source = source,
		.path = copy,
		.world_readable = world_readable,
	};
	value = (struct secrets_value){0};
	return 0;
}

int secrets_load_password(char *const *envp, const char *default_path, struct secrets_password *ret,
			  struct init_error *err)
{
	const char *file = env_get(envp, "REDIS_PASSWORD_FILE"), *env = env_get(envp, "REDIS_PASSWORD");
	struct secrets_value value;
	size_t len;
	int r;

	if (file && env)
		return init_error_set(
			err, -EINVAL,
			"REDIS_PASSWORD and REDIS_PASSWORD_FILE are both set: set only one (prefer the file)");
	if (file)
		return load_file(file, SECRETS_SRC_FILE, ret, err);
	if (default_path && *default_path) {
		r = load_file(default_path, SECRETS_SRC_DEFAULT_FILE, ret, err);
		if (r != -ENOENT)
			return r;
	}
	if (!env) {
		*ret = (struct secrets_password){.source = SECRETS_SRC_NONE};
		return 0;
	}

	/* A string from the environment cannot hold a NUL; strnlen stops early at a value far above the limit. */
	len = strnlen(env, SECRETS_MAX_SIZE + 1);
	r = init_check_value(env, len);
	if (r < 0)
		return init_error_set(err, r, "REDIS_PASSWORD: %s", secrets_strerror(r));
	if (secrets_value_copy(env, len, &value) < 0)
		return init_error_set(err, -ENOMEM, "out of memory");
	*ret = (struct secrets_password){.value = value, .source = SECRETS_SRC_ENV};
	return 0;
}
