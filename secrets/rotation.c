/* SPDX-License-Identifier: MIT */
/*
 * The rotation protocol's bookkeeping: where the three password files are, one read of them, and the set of
 * passwords the node accepts, folded from read to read. The reads are the only I/O here; the folding is pure, so
 * the unit tests can walk it through every step of a rotation with a fake clock.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "init.h"
#include "secrets.h"

static const char *const slot_names[SECRETS__SLOTS] = {"current", "next", "previous"};
static const char *const slot_vars[SECRETS__SLOTS] = {"REDIS_PASSWORD_FILE", "REDIS_PASSWORD_NEXT_FILE",
						      "REDIS_PASSWORD_PREVIOUS_FILE"};
static const char *const slot_suffixes[SECRETS__SLOTS] = {"", "_next", "_previous"};

const char *secrets_slot_name(enum secrets_slot slot)
{
	return slot < SECRETS__SLOTS ? slot_names[slot] : "?";
}

void secrets_paths_free(struct secrets_paths *p)
{
	for (int i = 0; i < SECRETS__SLOTS; i++)
		free(p->path[i]);
	*p = (struct secrets_paths){0};
}

int secrets_paths_resolve(char *const *envp, const char *current_path, struct secrets_paths *ret,
			  struct init_error *err)
{
	struct secrets_paths p = {0};

	for (int i = 0; i < SECRETS__SLOTS; i++) {
		const char *set = i == SECRETS_CURRENT ? NULL : init_env_lookup(envp, slot_vars[i]);
		int n;

		if (set && *set) {
			if (*set != '/' || init_has_control_chars(set)) {
				char shown[128];

				init_escape_control(shown, sizeof(shown), set);
				secrets_paths_free(&p);
				return init_error_set(err, -EINVAL, "%s='%s': must be an absolute path", slot_vars[i],
						      shown);
			}
			p.path[i] = strdup(set);
			n = p.path[i] ? 0 : -1;
		} else {
			n = asprintf(&p.path[i], "%s%s", current_path, slot_suffixes[i]);
		}
		if (n < 0) {
			p.path[i] = NULL;
			secrets_paths_free(&p);
			return init_error_set(err, -ENOMEM, "out of memory");
		}
	}
	*ret = p;
	return 0;
}

void secrets_set_wipe(struct secrets_set *s)
{
	for (int i = 0; i < SECRETS__SLOTS; i++)
		secrets_wipe(&s->value[i]);
	*s = (struct secrets_set){0};
}

void secrets_set_read(const struct secrets_paths *p, struct secrets_set *ret)
{
	*ret = (struct secrets_set){0};
	for (int i = 0; i < SECRETS__SLOTS; i++)
		ret->error[i] = secrets_read_file(p->path[i], &ret->value[i], NULL);
}

bool secrets_set_equal(const struct secrets_set *a, const struct secrets_set *b)
{
	for (int i = 0; i < SECRETS__SLOTS; i++)
		if (a->error[i] != b->error[i] || !secrets_value_equal(&a->value[i], &b->value[i]))
			return false;
	return true;
}

bool secrets_slot_absent(enum secrets_slot slot, int error)
{
	return slot != SECRETS_CURRENT && (error == -ENOENT || error == -ENODATA);
}

static void drop_entry(struct secrets_rotation *r, size_t i)
{
	secrets_wipe(&r->entry[i].value);
	explicit_bzero(r->entry[i].hash, sizeof(r->entry[i].hash));
	memmove(&r->entry[i], &r->entry[i + 1], (r->n - i - 1) * sizeof(r->entry[0]));
	r->n--;
	r->entry[r->n] = (struct secrets_accepted){0};
	if (r->current > i)
		r->current--;
}

static int find_value(const struct secrets_rotation *r, const struct secrets_value *v)
{
	for (size_t i = 0; i < r->n; i++)
		if (secrets_value_equal(&r->entry[i].value, v))
			return (int)i;
	return -1;
}

/*
 * Makes room for one more entry: the retired password closest to the end of its grace goes first. One that has
 * just left its file (no end set yet) is the newest of all, and goes only when nothing else can.
 */
static void make_room(struct secrets_rotation *r)
{
	size_t oldest = SIZE_MAX;

	if (r->n < SECRETS_MAX_ACCEPTED)
		return;
	for (size_t i = 0; i < r->n; i++) {
		const struct secrets_accepted *e = &r->entry[i];

		if (e->slots)
			continue;
		if (oldest == SIZE_MAX || (e->expires_usec && (!r->entry[oldest].expires_usec ||
							       e->expires_usec < r->entry[oldest].expires_usec)))
			oldest = i;
	}
	if (oldest != SIZE_MAX)
		drop_entry(r, oldest);
}

static int add_value(struct secrets_rotation *r, const struct secrets_value *v)
{
	struct secrets_accepted *e;

	make_room(r);
	if (r->n >= SECRETS_MAX_ACCEPTED) /* three slots never fill eight entries without a retired one */
		return -ENOSPC;
	e = &r->entry[r->n];
	*e = (struct secrets_accepted){0};
	if (secrets_value_copy(v->data, v->len, &e->value) < 0)
		return -ENOMEM;
	secrets_sha256_hex(e->value.data, e->value.len, e->hash);
	return (int)r->n++;
}

int secrets_rotation_update(struct secrets_rotation *r, const struct secrets_set *set, uint64_t now_usec)
{
	unsigned before[SECRETS_MAX_ACCEPTED];
	const struct secrets_value *added[SECRETS__SLOTS] = {0};
	size_t n_before = r->n;
	bool changed = false;

	for (size_t i = 0; i < r->n; i++)
		before[i] = r->entry[i].slots;

	/* 1. the files' bits on the passwords known already; new ones wait for step 3 */
	for (int slot = 0; slot < SECRETS__SLOTS; slot++) {
		unsigned bit = 1U << slot;
		int k;

		if (set->error[slot] < 0 && !secrets_slot_absent(slot, set->error[slot]))
			continue; /* unreadable: the slot keeps what it held */
		for (size_t i = 0; i < r->n; i++)
			r->entry[i].slots &= ~bit;
		if (set->error[slot] < 0 || !set->value[slot].data)
			continue; /* missing or empty: none */
		k = find_value(r, &set->value[slot]);
		if (k < 0)
			added[slot] = &set->value[slot];
		else
			r->entry[k].slots |= bit;
	}

	/* 2. what left every file: at once when it left the previous file, else after the grace period */
	for (size_t i = r->n; i-- > 0;) {
		struct secrets_accepted *e = &r->entry[i];

		if (e->slots != before[i])
			changed = true;
		if (e->slots || !before[i])
			continue;
		if ((before[i] & (1U << SECRETS_PREVIOUS)) || r->grace_usec == 0)
			drop_entry(r, i);
		else
			e->expires_usec = now_usec + r->grace_usec;
	}

	/* 3. the new passwords (one in two files is added once) */
	for (int slot = 0; slot < SECRETS__SLOTS; slot++) {
		int k;

		if (!added[slot])
			continue;
		k = find_value(r, added[slot]);
		if (k < 0)
			k = add_value(r, added[slot]);
		if (k < 0)
			return k;
		r->entry[k].slots |= 1U << slot;
		changed = true;
	}
	for (size_t i = 0; i < r->n; i++)
		if (r->entry[i].slots & (1U << SECRETS_CURRENT))
			r->current = i;
	return changed || r->n != n_before ? 1 : 0;
}

int secrets_rotation_expire(struct secrets_rotation *r, uint64_t now_usec)
{
	int dropped = 0;

	for (size_t i = r->n; i-- > 0;)
		if (r->entry[i].slots == 0 && r->entry[i].expires_usec <= now_usec && i != r->current) {
			drop_entry(r, i);
			dropped = 1;
		}
	return dropped;
}

uint64_t secrets_rotation_next_expiry(const struct secrets_rotation *r)
{
	uint64_t next = 0;

	for (size_t i = 0; i < r->n; i++)
		if (r->entry[i].slots == 0 && (next == 0 || r->entry[i].expires_usec < next))
			next = r->entry[i].expires_usec;
	return next;
}

size_t secrets_rotation_order(const struct secrets_rotation *r, size_t k)
{
	if (k == 0)
		return r->current;
	return k <= r->current ? k - 1 : k;
}

void secrets_rotation_describe(const struct secrets_rotation *r, char *buf, size_t size)
{
	size_t off = 0;

	buf[0] = '\0';
	for (size_t k = 0; k < r->n && off < size; k++) {
		size_t i = secrets_rotation_order(r, k);
		int w = snprintf(buf + off, size - off, "%s#%.8s", k ? " " : "", r->entry[i].hash);

		if (w < 0)
			break;
		off += (size_t)w;
	}
}

void secrets_rotation_free(struct secrets_rotation *r)
{
	while (r->n)
		drop_entry(r, r->n - 1);
	*r = (struct secrets_rotation){0};
}

void secrets_logins_add(struct secrets_logins *l, const struct secrets_value *v)
{
	const size_t max = sizeof(l->value) / sizeof(l->value[0]);

	for (size_t i = 0; i < l->n; i++)
		if (secrets_value_equal(&l->value[i], v))
			return;
	if (l->n == max) {
		secrets_wipe(&l->value[0]);
		memmove(&l->value[0], &l->value[1], (l->n - 1) * sizeof(l->value[0]));
		l->value[--l->n] = (struct secrets_value){0};
	}
	if (secrets_value_copy(v->data, v->len, &l->value[l->n]) == 0)
		l->n++;
}

void secrets_logins_wipe(struct secrets_logins *l)
{
	for (size_t i = 0; i < l->n; i++)
		secrets_wipe(&l->value[i]);
	l->n = 0;
}

void secrets_logins_reset(struct secrets_logins *l, const struct secrets_rotation *r)
{
	secrets_logins_wipe(l);
	for (size_t i = 0; i < r->n; i++)
		secrets_logins_add(l, &r->entry[i].value);
}
