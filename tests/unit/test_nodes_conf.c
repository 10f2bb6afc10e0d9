/* SPDX-License-Identifier: MIT */
/* nodes.conf repair: the myself address rewritten, every other byte kept, corrupt files refused and left alone. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "node.h"

#define ID0 "e7d1eecce10fd6bb5eb35b9f99a514335d9ba9ca"
#define ID1 "67ed2db8d677e59ec4a4cefb06858cf2a1a89fa1"
#define ID2 "292f8b365bb7edb5e285caf0b7e6ddc7265d2f4f"

#define LINE0 ID0 " 172.19.0.60:6379@16379,redis-node-0 myself,master - 0 1700000000000 1 connected 0-5460\n"
#define LINE1 ID1 " 172.19.0.61:6379@16379,redis-node-1 master - 0 1700000000456 2 connected 5461-10922\n"
#define LINE2 ID2 " 172.19.0.62:6379@16379,redis-node-2 master - 0 1700000000123 3 connected 10923-16383\n"
#define VARS  "vars currentEpoch 6 lastVoteEpoch 0\n"

/* Something neither a real address nor NULL: shows that an out-parameter was left alone. */
static char untouched[] = "untouched";

static int fix(const char *text, const char *ip, unsigned port, unsigned bus, char **ret_text, char **ret_old)
{
	return node_nodes_conf_fix_text(text, strlen(text), ip, port, bus, ret_text, ret_old);
}

/* Rewrites text and checks the result and the old address exactly. */
static void expect_rewrite(const char *text, const char *ip, unsigned port, unsigned bus, const char *want_text,
			   const char *want_old)
{
	char *out = untouched, *old = untouched;

	assert_int_equal(fix(text, ip, port, bus, &out, &old), 1);
	assert_string_equal(out, want_text);
	assert_string_equal(old, want_old);
	free(out);
	free(old);
}

/* Checks that text yields r and writes neither out-parameter. */
static void expect_result(const char *text, size_t len, const char *ip, unsigned port, unsigned bus, int r)
{
	char *out = untouched, *old = untouched;

	assert_int_equal(node_nodes_conf_fix_text(text, len, ip, port, bus, &out, &old), r);
	assert_ptr_equal(out, untouched);
	assert_ptr_equal(old, untouched);
}

static void test_ipv4_keeps_hostname(void **state)
{
	(void)state;
	expect_rewrite(
		LINE0 LINE1 LINE2 VARS, "10.0.0.7", 6379, 16379,
		ID0 " 10.0.0.7:6379@16379,redis-node-0 myself,master - 0 1700000000000 1 connected 0-5460\n" LINE1 LINE2
			VARS,
		"172.19.0.60:6379@16379");
	/* ports change too */
	expect_rewrite(LINE0 VARS, "172.19.0.60", 7000, 17000,
		       ID0
		       " 172.19.0.60:7000@17000,redis-node-0 myself,master - 0 1700000000000 1 connected 0-5460\n" VARS,
		       "172.19.0.60:6379@16379");
}

static void test_redis6_without_hostname(void **state)
{
	(void)state;
	expect_rewrite(ID1 " 172.19.0.61:6379@16379 master - 0 1700000000456 2 connected 5461-10922\n" ID0
			   " 172.19.0.60:6379@16379 myself,master - 0 1700000000000 1 connected 0-5460\n" VARS,
		       "10.0.0.7", 6379, 16379,
		       ID1 " 172.19.0.61:6379@16379 master - 0 1700000000456 2 connected 5461-10922\n" ID0
			   " 10.0.0.7:6379@16379 myself,master - 0 1700000000000 1 connected 0-5460\n" VARS,
		       "172.19.0.60:6379@16379");
}

/* Redis 7.0 writes an empty hostname as a bare ','; 7.2 appends ",key=value" pairs. Both belong to the node. */
static void test_hostname_variants(void **state)
{
	(void)state;
	expect_rewrite(ID0 " 172.19.0.60:6379@16379, myself,master - 0 0 1 connected 0-16383\n" VARS, "10.0.0.7", 6379,
		       16379, ID0 " 10.0.0.7:6379@16379, myself,master - 0 0 1 connected 0-16383\n" VARS,
		       "172.19.0.60:6379@16379");
	expect_rewrite(ID0 " 172.19.0.60:6379@16379,redis-node-0,shard-id=" ID1
			   ",tls-port=0 myself,master - 0 0 1 connected 0-16383\n" VARS,
		       "10.0.0.7", 6379, 16379,
		       ID0 " 10.0.0.7:6379@16379,redis-node-0,shard-id=" ID1
			   ",tls-port=0 myself,master - 0 0 1 connected 0-16383\n" VARS,
		       "172.19.0.60:6379@16379");
}

static void test_ipv6(void **state)
{
	(void)state;
	/* IPv6 to IPv6: the port is after the last ':' */
	expect_rewrite(ID0 " 2001:db8::5:6379@16379,redis-node-0 myself,master - 0 0 1 connected 0-16383\n" VARS,
		       "2001:db8::6", 6379, 16379,
		       ID0 " 2001:db8::6:6379@16379,redis-node-0 myself,master - 0 0 1 connected 0-16383\n" VARS,
		       "2001:db8::5:6379@16379");
	/* IPv4 to IPv6, written without brackets as Redis writes it */
	expect_rewrite(LINE0 VARS, "::1", 6379, 16379,
		       ID0 " ::1:6379@16379,redis-node-0 myself,master - 0 1700000000000 1 connected 0-5460\n" VARS,
		       "172.19.0.60:6379@16379");
	/* IPv6 to IPv4 */
	expect_rewrite(ID0 " ::1:6379@16379 myself,master - 0 0 1 connected 0-16383\n" VARS, "10.0.0.7", 6380, 16380,
		       ID0 " 10.0.0.7:6380@16380 myself,master - 0 0 1 connected 0-16383\n" VARS, "::1:6379@16379");
	expect_result(ID0 " 2001:db8::5:6379@16379 myself,master - 0 0 1 connected 0-16383\n" VARS,
		      strlen(ID0 " 2001:db8::5:6379@16379 myself,master - 0 0 1 connected 0-16383\n" VARS),
		      "2001:db8::5", 6379, 16379, 0);
}

static void test_unchanged(void **state)
{
	const char *text = LINE1 LINE0 LINE2 VARS;

	(void)state;
	expect_result(text, strlen(text), "172.19.0.60", 6379, 16379, 0);
}

/* A node that never learnt its address has ":0@0"; a replica's line has a master id and no slots. */
static void test_myself_last_unknown_address(void **state)
{
	(void)state;
	expect_rewrite(VARS LINE1 LINE2 ID0 " :0@0 myself,slave " ID1 " 0 0 2 connected\n", "10.0.0.7", 6379, 16379,
		       VARS LINE1 LINE2 ID0 " 10.0.0.7:6379@16379 myself,slave " ID1 " 0 0 2 connected\n", ":0@0");
}

static void test_vars_line_kept(void **state)
{
	(void)state;
	/* anywhere, in any case, with any spacing: it is Redis's, and it holds no address */
	expect_rewrite("VARS  currentEpoch 6\tlastVoteEpoch 0 \n" LINE0 "vars currentEpoch 7 lastVoteEpoch 0",
		       "10.0.0.7", 6379, 16379,
		       "VARS  currentEpoch 6\tlastVoteEpoch 0 \n" ID0
		       " 10.0.0.7:6379@16379,redis-node-0 myself,master - 0 1700000000000 1 connected 0-5460\n"
		       "vars currentEpoch 7 lastVoteEpoch 0",
		       "172.19.0.60:6379@16379");
}

static void test_no_trailing_newline(void **state)
{
	(void)state;
	expect_rewrite(LINE1 ID0 " 172.19.0.60:6379@16379,redis-node-0 myself,master - 0 0 1 connected 0-5460",
		       "10.0.0.7", 6379, 16379,
		       LINE1 ID0 " 10.0.0.7:6379@16379,redis-node-0 myself,master - 0 0 1 connected 0-5460",
		       "172.19.0.60:6379@16379");
}

/* Redis never writes CRLF; a '\r' is part of the last field, so it is kept, and a line of "\r" alone is blank. */
static void test_crlf(void **state)
{
	(void)state;
	expect_rewrite(ID0 " 172.19.0.60:6379@16379 myself,master - 0 0 1 connected 0-5460\r\n\r\n" VARS, "10.0.0.7",
		       6379, 16379, ID0 " 10.0.0.7:6379@16379 myself,master - 0 0 1 connected 0-5460\r\n\r\n" VARS,
		       "172.19.0.60:6379@16379");
}

/* Redis pads a shrinking file with newlines before it truncates it: blank lines are not corrupt. */
static void test_blank_lines(void **state)
{
	(void)state;
	expect_rewrite("\n" LINE0 "\n \t\n" VARS "\n\n\n", "10.0.0.7", 6379, 16379,
		       "\n" ID0 " 10.0.0.7:6379@16379,redis-node-0 myself,master - 0 1700000000000 1 connected 0-5460\n"
		       "\n \t\n" VARS "\n\n\n",
		       "172.19.0.60:6379@16379");
}

static void test_empty_text(void **state)
{
	(void)state;
	expect_result("", 0, "10.0.0.7", 6379, 16379, 0);
	expect_result("\n\n", 2, "10.0.0.7", 6379, 16379, 0);
	expect_result(" \t\r\n\n ", 6, "10.0.0.7", 6379, 16379, 0);
}

static void test_no_myself(void **state)
{
	const char *no_myself = LINE1 LINE2 VARS;
	const char *not_myself = ID0 " 172.19.0.60:6379@16379,redis-node-0 notmyself,master - 0 0 1 connected\n" VARS;
	const char *myselfish = ID0 " 172.19.0.60:6379@16379 master,myselfish - 0 0 1 connected\n" VARS;
	const char *hostname = ID0 " 172.19.0.60:6379@16379,myself master - 0 0 1 connected myself\n" VARS;

	(void)state;
	expect_result(no_myself, strlen(no_myself), "10.0.0.7", 6379, 16379, -ENOENT);
	expect_result(not_myself, strlen(not_myself), "10.0.0.7", 6379, 16379, -ENOENT);
	expect_result(myselfish, strlen(myselfish), "10.0.0.7", 6379, 16379, -ENOENT);
	expect_result(hostname, strlen(hostname), "10.0.0.7", 6379, 16379, -ENOENT);
	expect_result(VARS, strlen(VARS), "10.0.0.7", 6379, 16379, -ENOENT);
}

/* The flag is found wherever it stands in the list. */
static void test_myself_flag_position(void **state)
{
	(void)state;
	expect_rewrite(ID0 " 1.2.3.4:6379@16379 master,nofailover,myself - 0 0 1 connected\n", "10.0.0.7", 6379, 16379,
		       ID0 " 10.0.0.7:6379@16379 master,nofailover,myself - 0 0 1 connected\n", "1.2.3.4:6379@16379");
	expect_rewrite(ID0 " 1.2.3.4:6379@16379 myself - 0 0 1 connected\n", "10.0.0.7", 6379, 16379,
		       ID0 " 10.0.0.7:6379@16379 myself - 0 0 1 connected\n", "1.2.3.4:6379@16379");
}

static void test_corrupt(void **state)
{
	static const char *const texts[] = {
		/* two myself lines */
		LINE0 ID1 " 172.19.0.61:6379@16379 myself,master - 0 0 2 connected\n" VARS,
		/* seven fields */
		LINE0 ID1 " 172.19.0.61:6379@16379 master - 0 0 2\n" VARS,
		/* 39 hex characters */
		"e7d1eecce10fd6bb5eb35b9f99a514335d9ba9c 172.19.0.60:6379@16379 myself,master - 0 0 1 connected\n",
		/* 41 */
		"e7d1eecce10fd6bb5eb35b9f99a514335d9ba9caa 172.19.0.60:6379@16379 myself,master - 0 0 1 connected\n",
		/* not hex */
		"g7d1eecce10fd6bb5eb35b9f99a514335d9ba9ca 172.19.0.60:6379@16379 myself,master - 0 0 1 connected\n",
		/* Redis 3 address, no bus port */
		ID0 " 172.19.0.60:6379 myself,master - 0 0 1 connected\n",
		/* no port */
		ID0 " 172.19.0.60@16379 myself,master - 0 0 1 connected\n",
		/* the ':' is in the hostname only */
		ID0 " 172.19.0.60@16379,host:1 myself,master - 0 0 1 connected\n",
		/* a line cut short after a good one */
		LINE0 ID1 " 172.19.0.61:63",
		/* binary, no NUL */
		"\x7f"
		"ELF\x02\x01\x01\xff\xfe garbage \x89PNG\r\n\x1a\n",
		"hello world\n",
	};

	(void)state;
	for (size_t i = 0; i < sizeof(texts) / sizeof(texts[0]); i++)
		expect_result(texts[i], strlen(texts[i]), "10.0.0.7", 6379, 16379, -EBADMSG);
}

/* A NUL can neither be in a nodes.conf nor survive the C string the new text is returned as. */
static void test_nul_bytes(void **state)
{
	static const char elf[] = "\x7f"
				  "ELF\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\x3e\x00";
	static const char tail[] = LINE0 VARS "\0\0\0";

	(void)state;
	expect_result(elf, sizeof(elf) - 1, "10.0.0.7", 6379, 16379, -EBADMSG);
	expect_result(tail, sizeof(tail) - 1, "10.0.0.7", 6379, 16379, -EBADMSG);
}

static void test_bad_address(void **state)
{
	static const char *const ips[] = {
		"", "1.2.3", "1.2.3.256", "redis-node-0", " 1.2.3.4", "1.2.3.4 ", "::1%lo", "[::1]", "1.2.3.4\n",
	};
	const char *text = LINE0 VARS;
	size_t len = strlen(text);

	(void)state;
	for (size_t i = 0; i < sizeof(ips) / sizeof(ips[0]); i++)
		expect_result(text, len, ips[i], 6379, 16379, -EINVAL);
	expect_result(text, len, NULL, 6379, 16379, -EINVAL);
	expect_result(NULL, 0, "10.0.0.7", 6379, 16379, -EINVAL);
	expect_result(text, len, "10.0.0.7", 0, 16379, -EINVAL);
	expect_result(text, len, "10.0.0.7", 6379, 0, -EINVAL);
	expect_result(text, len, "10.0.0.7", 65536, 16379, -EINVAL);
	expect_result(text, len, "10.0.0.7", 6379, 75536, -EINVAL);
	/* the arguments are checked before the text: a bad address is the caller's bug whatever the file holds */
	expect_result("", 0, "10.0.0.7", 0, 16379, -EINVAL);
	expect_result("garbage", 7, "10.0.0.7", 6379, 0, -EINVAL);
	/* the limits themselves are ports */
	expect_rewrite(LINE0, "10.0.0.7", 65535, 1,
		       ID0 " 10.0.0.7:65535@1,redis-node-0 myself,master - 0 1700000000000 1 connected 0-5460\n",
		       "172.19.0.60:6379@16379");
}

static void test_old_may_be_null(void **state)
{
	char *out = NULL;

	(void)state;
	assert_int_equal(fix(LINE0, "10.0.0.7", 6379, 16379, &out, NULL), 1);
	assert_string_equal(out, ID0
			    " 10.0.0.7:6379@16379,redis-node-0 myself,master - 0 1700000000000 1 connected 0-5460\n");
	free(out);
}

/* ---- the file ---- */

#define HINT                                                                                                           \
	"move it away to let the node start fresh (it will rejoin as a new node), or set "                             \
	"KVINIT_RESET_CORRUPT_NODES_CONF=yes"

struct dir {
	char path[64];
	char conf[96];
};

static int setup_dir(void **state)
{
	struct dir *d = calloc(1, sizeof(*d));

	if (!d)
		return -1;
	(void)snprintf(d->path, sizeof(d->path), "/tmp/kvinit-nodes-conf-XXXXXX");
	if (!mkdtemp(d->path)) {
		free(d);
		return -1;
	}
	(void)snprintf(d->conf, sizeof(d->conf), "%s/nodes.conf", d->path);
	*state = d;
	return 0;
}

static int teardown_dir(void **state)
{
	struct dir *d = *state;
	DIR *dir = opendir(d->path);
	struct dirent *e;
	char p[384];
	int r;

	if (dir) {
		while ((e = readdir(dir))) {
			if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
				continue;
			(void)snprintf(p, sizeof(p), "%s/%s", d->path, e->d_name);
			if (unlink(p) < 0)
				(void)rmdir(p);
		}
		(void)closedir(dir);
	}
	r = rmdir(d->path);
	free(d);
	return r;
}

static void write_file(const char *path, const char *text, size_t len, mode_t mode)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);

	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, len), (ssize_t)len);
	assert_int_equal(fchmod(fd, mode), 0);
	assert_int_equal(close(fd), 0);
}

static void expect_file(const char *path, const char *text, size_t len)
{
	char buf[4096];
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n;

	assert_true(fd >= 0);
	n = read(fd, buf, sizeof(buf));
	assert_int_equal(close(fd), 0);
	assert_int_equal(n, (ssize_t)len);
	assert_memory_equal(buf, text, len);
}

/* The directory holds exactly the names given: no temp file was left behind. */
static void expect_dir(const struct dir *d, const char *only)
{
	DIR *dir = opendir(d->path);
	struct dirent *e;
	int seen = 0;

	assert_non_null(dir);
	while ((e = readdir(dir))) {
		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
			continue;
		assert_non_null(only);
		assert_string_equal(e->d_name, only);
		seen++;
	}
	assert_int_equal(closedir(dir), 0);
	assert_int_equal(seen, only ? 1 : 0);
}

static void test_repair_rewrites(void **state)
{
	const struct dir *d = *state;
	const char *text = LINE1 LINE0 LINE2 VARS;
	const char *want = LINE1 ID0
		" 10.0.0.7:6379@16379,redis-node-0 myself,master - 0 1700000000000 1 connected 0-5460\n" LINE2 VARS;
	struct init_error err = {.msg = ""};
	bool root = geteuid() == 0;
	char *old = untouched;
	struct stat st;

	write_file(d->conf, text, strlen(text), 0640);
	/* a redis user owns the file in the image; as root, show that the owner is carried over */
	if (root)
		assert_int_equal(chown(d->conf, 4242, 4243), 0);
	assert_int_equal(node_nodes_conf_repair(d->conf, "10.0.0.7", 6379, 16379, &old, &err), 1);
	assert_string_equal(old, "172.19.0.60:6379@16379");
	free(old);
	expect_file(d->conf, want, strlen(want));
	assert_int_equal(stat(d->conf, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0640);
	if (root) {
		assert_int_equal(st.st_uid, 4242);
		assert_int_equal(st.st_gid, 4243);
	}
	expect_dir(d, "nodes.conf");

	/* run again: nothing to do, the file is not replaced */
	old = untouched;
	{
		struct stat again;

		assert_int_equal(node_nodes_conf_repair(d->conf, "10.0.0.7", 6379, 16379, &old, &err), 0);
		assert_ptr_equal(old, untouched);
		assert_int_equal(stat(d->conf, &again), 0);
		assert_int_equal(again.st_ino, st.st_ino);
	}
	expect_file(d->conf, want, strlen(want));
	expect_dir(d, "nodes.conf");
}

static void test_repair_old_may_be_null(void **state)
{
	const struct dir *d = *state;
	struct init_error err = {.msg = ""};

	write_file(d->conf, LINE0, strlen(LINE0), 0600);
	assert_int_equal(node_nodes_conf_repair(d->conf, "10.0.0.7", 6379, 16379, NULL, &err), 1);
	expect_file(d->conf,
		    ID0 " 10.0.0.7:6379@16379,redis-node-0 myself,master - 0 1700000000000 1 connected 0-5460\n",
		    strlen(LINE0) - 3);
	expect_dir(d, "nodes.conf");
}

static void test_repair_missing(void **state)
{
	const struct dir *d = *state;
	struct init_error err = {.msg = ""};
	char *old = untouched;

	assert_int_equal(node_nodes_conf_repair(d->conf, "10.0.0.7", 6379, 16379, &old, &err), 0);
	assert_ptr_equal(old, untouched);
	expect_dir(d, NULL);
}

static void test_repair_empty(void **state)
{
	const struct dir *d = *state;
	struct init_error err = {.msg = ""};
	char *old = untouched;

	write_file(d->conf, "", 0, 0644);
	assert_int_equal(node_nodes_conf_repair(d->conf, "10.0.0.7", 6379, 16379, &old, &err), 0);
	assert_ptr_equal(old, untouched);
	expect_file(d->conf, "", 0);
	expect_dir(d, "nodes.conf");
}

static void test_repair_corrupt(void **state)
{
	const struct dir *d = *state;
	static const char text[] = LINE0 ID1 " 172.19.0.61:6379@16379 master - 0 0 2\n" VARS;
	struct init_error err = {.msg = ""};
	char *old = untouched, want[1024];
	struct stat before, after;

	write_file(d->conf, text, sizeof(text) - 1, 0640);
	assert_int_equal(stat(d->conf, &before), 0);
	assert_int_equal(node_nodes_conf_repair(d->conf, "10.0.0.7", 6379, 16379, &old, &err), -EBADMSG);
	assert_ptr_equal(old, untouched);
	(void)snprintf(want, sizeof(want), "'%s' is corrupt (fewer than 8 fields, line 2): " HINT, d->conf);
	assert_string_equal(err.msg, want);
	expect_file(d->conf, text, sizeof(text) - 1);
	assert_int_equal(stat(d->conf, &after), 0);
	assert_int_equal(after.st_ino, before.st_ino);
	assert_int_equal(after.st_mode, before.st_mode);
	expect_dir(d, "nodes.conf");
}

static void test_repair_corrupt_messages(void **state)
{
	static const struct {
		const char *text, *what;
		bool nul; /* the text goes on to one NUL byte */
	} cases[] = {
		{"g7d1eecce10fd6bb5eb35b9f99a514335d9ba9ca 1.2.3.4:1@2 myself - 0 0 1 connected\n",
		 "node id is not 40 hex characters, line 1", false},
		{"\n" ID0 " 1.2.3.4:1 myself - 0 0 1 connected\n", "address has no '@', line 2", false},
		{ID0 " 1.2.3.4@2 myself - 0 0 1 connected\n", "address has no ':' before '@', line 1", false},
		{LINE0 LINE1 LINE0, "second 'myself' line, line 3", false},
		{LINE0 "vars\0", "NUL byte, line 2", true},
	};
	const struct dir *d = *state;
	struct init_error err = {.msg = ""};
	char want[1024];

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		size_t len = strlen(cases[i].text) + (cases[i].nul ? 1 : 0);

		write_file(d->conf, cases[i].text, len, 0644);
		assert_int_equal(node_nodes_conf_repair(d->conf, "10.0.0.7", 6379, 16379, NULL, &err), -EBADMSG);
		(void)snprintf(want, sizeof(want), "'%s' is corrupt (%s): " HINT, d->conf, cases[i].what);
		assert_string_equal(err.msg, want);
		expect_file(d->conf, cases[i].text, len);
		expect_dir(d, "nodes.conf");
	}
}

/* Redis refuses a file without a myself line as it refuses a corrupt one: the way out is the same. */
static void test_repair_no_myself(void **state)
{
	const struct dir *d = *state;
	const char *text = LINE1 LINE2 VARS;
	struct init_error err = {.msg = ""};
	char *old = untouched, want[1024];

	write_file(d->conf, text, strlen(text), 0644);
	assert_int_equal(node_nodes_conf_repair(d->conf, "10.0.0.7", 6379, 16379, &old, &err), -EBADMSG);
	assert_ptr_equal(old, untouched);
	(void)snprintf(want, sizeof(want), "'%s' has no 'myself' line: " HINT, d->conf);
	assert_string_equal(err.msg, want);
	expect_file(d->conf, text, strlen(text));
	expect_dir(d, "nodes.conf");
}

static void test_repair_too_big(void **state)
{
	const struct dir *d = *state;
	struct init_error err = {.msg = ""};
	char want[512];
	int fd;

	fd = open(d->conf, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, ((off_t)64 << 20) + 1), 0); /* sparse: costs no disk */
	assert_int_equal(close(fd), 0);
	/* no nodes.conf is this large: corrupt, and KVINIT_RESET_CORRUPT_NODES_CONF applies to it as to any other */
	assert_int_equal(node_nodes_conf_repair(d->conf, "10.0.0.7", 6379, 16379, NULL, &err), -EBADMSG);
	(void)snprintf(want, sizeof(want), "'%s' is corrupt (67108865 bytes: a nodes.conf is at most 64 MiB): " HINT,
		       d->conf);
	assert_string_equal(err.msg, want);

	/* exactly 64 MiB is read, and is corrupt */
	assert_int_equal(truncate(d->conf, (off_t)64 << 20), 0);
	assert_int_equal(node_nodes_conf_repair(d->conf, "10.0.0.7", 6379, 16379, NULL, &err), -EBADMSG);
	(void)snprintf(want, sizeof(want), "'%s' is corrupt (NUL byte, line 1): " HINT, d->conf);
	assert_string_equal(err.msg, want);
	expect_dir(d, "nodes.conf");
}

static void test_repair_not_a_file(void **state)
{
	const struct dir *d = *state;
	struct init_error err = {.msg = ""};
	char want[512];

	assert_int_equal(mkdir(d->conf, 0755), 0);
	assert_int_equal(node_nodes_conf_repair(d->conf, "10.0.0.7", 6379, 16379, NULL, &err), -EINVAL);
	(void)snprintf(want, sizeof(want), "'%s' is not a regular file", d->conf);
	assert_string_equal(err.msg, want);
	assert_int_equal(rmdir(d->conf), 0);

	/* a FIFO must not block */
	assert_int_equal(mkfifo(d->conf, 0644), 0);
	assert_int_equal(node_nodes_conf_repair(d->conf, "10.0.0.7", 6379, 16379, NULL, &err), -EINVAL);
	assert_string_equal(err.msg, want);
	expect_dir(d, "nodes.conf");
}

static void test_repair_bad_address(void **state)
{
	const struct dir *d = *state;
	struct init_error err = {.msg = ""};
	char *old = untouched, want[512];

	write_file(d->conf, LINE0, strlen(LINE0), 0644);
	assert_int_equal(node_nodes_conf_repair(d->conf, "10.0.0", 6379, 16379, &old, &err), -EINVAL);
	assert_ptr_equal(old, untouched);
	(void)snprintf(want, sizeof(want), "cannot rewrite '%s': invalid address '10.0.0:6379@16379'", d->conf);
	assert_string_equal(err.msg, want);
	expect_file(d->conf, LINE0, strlen(LINE0));
	expect_dir(d, "nodes.conf");
}

/* A write that fails half way (here: the file size limit) removes the temp file and leaves the original alone. */
static void test_repair_write_fails(void **state)
{
	const struct dir *d = *state;
	const char *text = LINE1 LINE0 LINE2 VARS;
	struct init_error err = {.msg = ""};
	struct rlimit saved, small = {.rlim_cur = 16};
	char *old = untouched, want[512];
	void (*saved_handler)(int);
	int r;

	write_file(d->conf, text, strlen(text), 0640);
	assert_int_equal(getrlimit(RLIMIT_FSIZE, &saved), 0);
	small.rlim_max = saved.rlim_max;
	saved_handler = signal(SIGXFSZ, SIG_IGN);
	assert_int_equal(setrlimit(RLIMIT_FSIZE, &small), 0);
	r = node_nodes_conf_repair(d->conf, "10.0.0.7", 6379, 16379, &old, &err);
	assert_int_equal(setrlimit(RLIMIT_FSIZE, &saved), 0);
	(void)signal(SIGXFSZ, saved_handler);

	assert_int_equal(r, -EFBIG);
	assert_ptr_equal(old, untouched);
	(void)snprintf(want, sizeof(want), "cannot rewrite '%s': cannot write the temp file: %s", d->conf,
		       strerror(EFBIG));
	assert_string_equal(err.msg, want);
	expect_file(d->conf, text, strlen(text));
	expect_dir(d, "nodes.conf");
}

/* A path without a directory part is in the working directory, which is the one fsynced. */
static void test_repair_relative_path(void **state)
{
	const struct dir *d = *state;
	struct init_error err = {.msg = ""};
	int cwd = open(".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	assert_true(cwd >= 0);
	write_file(d->conf, LINE0, strlen(LINE0), 0644);
	assert_int_equal(chdir(d->path), 0);
	assert_int_equal(node_nodes_conf_repair("nodes.conf", "10.0.0.7", 6379, 16379, NULL, &err), 1);
	assert_int_equal(fchdir(cwd), 0);
	assert_int_equal(close(cwd), 0);
	expect_file(d->conf,
		    ID0 " 10.0.0.7:6379@16379,redis-node-0 myself,master - 0 1700000000000 1 connected 0-5460\n",
		    strlen(LINE0) - 3);
	expect_dir(d, "nodes.conf");
}

int main(void)
{
#define FILE_TEST(f) cmocka_unit_test_setup_teardown(f, setup_dir, teardown_dir)
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_ipv4_keeps_hostname),
		cmocka_unit_test(test_redis6_without_hostname),
		cmocka_unit_test(test_hostname_variants),
		cmocka_unit_test(test_ipv6),
		cmocka_unit_test(test_unchanged),
		cmocka_unit_test(test_myself_last_unknown_address),
		cmocka_unit_test(test_vars_line_kept),
		cmocka_unit_test(test_no_trailing_newline),
		cmocka_unit_test(test_crlf),
		cmocka_unit_test(test_blank_lines),
		cmocka_unit_test(test_empty_text),
		cmocka_unit_test(test_no_myself),
		cmocka_unit_test(test_myself_flag_position),
		cmocka_unit_test(test_corrupt),
		cmocka_unit_test(test_nul_bytes),
		cmocka_unit_test(test_bad_address),
		cmocka_unit_test(test_old_may_be_null),
		FILE_TEST(test_repair_rewrites),
		FILE_TEST(test_repair_old_may_be_null),
		FILE_TEST(test_repair_missing),
		FILE_TEST(test_repair_empty),
		FILE_TEST(test_repair_corrupt),
		FILE_TEST(test_repair_corrupt_messages),
		FILE_TEST(test_repair_no_myself),
		FILE_TEST(test_repair_too_big),
		FILE_TEST(test_repair_not_a_file),
		FILE_TEST(test_repair_bad_address),
		FILE_TEST(test_repair_write_fails),
		FILE_TEST(test_repair_relative_path),
	};
#undef FILE_TEST

	return cmocka_run_group_tests_name("nodes_conf", tests, NULL, NULL);
}
