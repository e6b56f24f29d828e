// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * mmap_malloc.so: a deliberately naive allocator for the shim's tests. Each
 * allocation is a mapping of its own, made through mmap(3) (so through the
 * shim's interposer when the shim comes first in LD_PRELOAD), and its
 * constructor maps and allocates memory. Preloaded after the shim
 * (LD_PRELOAD="libtiermm-preload.so mmap_malloc.so") its constructor runs
 * before the shim's, and every malloc() made while the shim resolves the
 * C library's functions with dlsym() maps memory: the shim's interposers
 * must cope with both.
 */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define EXPORT __attribute__((visibility("default")))
#define MIN_ALIGN 16

struct hdr {
	void *base;
	size_t maplen;
	size_t size;
	size_t pad;
};

static void *alloc(size_t size, size_t align)
{
	size_t need, maplen;
	uintptr_t p;
	char *base;
	struct hdr *h;

	if (align < MIN_ALIGN)
		align = MIN_ALIGN;
	if (size > SIZE_MAX / 2) {
		errno = ENOMEM;
		return NULL;
	}
	need = size + sizeof(struct hdr) + align;
	maplen = (need + 4095) & ~(size_t)4095;
	base = mmap(NULL, maplen, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (base == MAP_FAILED) {
		errno = ENOMEM;
		return NULL;
	}
	p = ((uintptr_t)base + sizeof(struct hdr) + align - 1) & ~(uintptr_t)(align - 1);
	h = (struct hdr *)p - 1;
	h->base = base;
	h->maplen = maplen;
	h->size = size;
	return (void *)p;
}

EXPORT void *malloc(size_t size)
{
	return alloc(size, MIN_ALIGN);
}

EXPORT void free(void *p)
{
	struct hdr *h;

	if (!p)
		return;
	h = (struct hdr *)p - 1;
	munmap(h->base, h->maplen);
}

EXPORT void *calloc(size_t n, size_t size)
{
	if (size && n > SIZE_MAX / size) {
		errno = ENOMEM;
		return NULL;
	}
	/* Fresh mappings are zeroed. */
	return alloc(n * size, MIN_ALIGN);
}

EXPORT void *realloc(void *p, size_t size)
{
	struct hdr *h;
	void *q;

	if (!p)
		return malloc(size);
	if (!size) {
		free(p);
		return NULL;
	}
	h = (struct hdr *)p - 1;
	q = malloc(size);
	if (!q)
		return NULL;
	memcpy(q, p, h->size < size ? h->size : size);
	free(p);
	return q;
}

EXPORT void *reallocarray(void *p, size_t n, size_t size)
{
	if (size && n > SIZE_MAX / size) {
		errno = ENOMEM;
		return NULL;
	}
	return realloc(p, n * size);
}

EXPORT int posix_memalign(void **out, size_t align, size_t size)
{
	void *p;

	if (!align || (align & (align - 1)) || align % sizeof(void *))
		return EINVAL;
	p = alloc(size, align);
	if (!p)
		return ENOMEM;
	*out = p;
	return 0;
}

EXPORT void *aligned_alloc(size_t align, size_t size)
{
	if (!align || (align & (align - 1))) {
		errno = EINVAL;
		return NULL;
	}
	return alloc(size, align);
}

EXPORT void *memalign(size_t align, size_t size)
{
	return aligned_alloc(align, size);
}

EXPORT void *valloc(size_t size)
{
	return alloc(size, 4096);
}

EXPORT void *pvalloc(size_t size)
{
	return alloc((size + 4095) & ~(size_t)4095, 4096);
}

EXPORT size_t malloc_usable_size(void *p)
{
	return p ? ((struct hdr *)p - 1)->size : 0;
}

__attribute__((constructor)) static void early(void)
{
	/* Before the shim's constructor: map, allocate, release. */
	void *m = mmap(NULL, 8192, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	char *p = malloc(100);

	if (m != MAP_FAILED)
		munmap(m, 8192);
	if (p)
		strcpy(p, "early");
	free(p);
}
