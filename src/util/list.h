/* One intrusive doubly linked list for every queue in vhdup, in the manner
 * of libuv's uv__queue: a vhdup__list is embedded in each element and one
 * in the owner as the head; an empty list is a head pointing at itself.
 * Insertion, removal and emptiness are O(1) and never allocate. */
#ifndef VHDUP_UTIL_LIST_H
#define VHDUP_UTIL_LIST_H

#include <stddef.h>

typedef struct vhdup__list {
  struct vhdup__list *next;
  struct vhdup__list *prev;
} vhdup__list;

/* The element that embeds node as its field named member. */
#define vhdup__list_entry(node, type, member) ((type *)((char *)(node)-offsetof(type, member)))

/* Each element from the first to the last; the body must not remove node
 * (see vhdup__list_foreach_safe). */
#define vhdup__list_foreach(node, head)                                                            \
  for (vhdup__list *node = (head)->next; node != (head); node = node->next)

/* As foreach, but the body may remove node. */
#define vhdup__list_foreach_safe(node, head)                                                       \
  for (vhdup__list *node = (head)->next, *node##_next = node->next; node != (head);                \
       node = node##_next, node##_next = node->next)

static inline void vhdup__list_init(vhdup__list *head) {
  head->next = head;
  head->prev = head;
}

static inline int vhdup__list_empty(const vhdup__list *head) {
  return head->next == head;
}

/* An element's node after vhdup__list_init or vhdup__list_remove_init. */
static inline int vhdup__list_linked(const vhdup__list *node) {
  return node->next != node;
}

static inline vhdup__list *vhdup__list_first(const vhdup__list *head) {
  return head->next == head ? NULL : head->next;
}

static inline vhdup__list *vhdup__list_last(const vhdup__list *head) {
  return head->prev == head ? NULL : head->prev;
}

/* Links node just before pos (at the tail when pos is the head). */
static inline void vhdup__list_insert_before(vhdup__list *pos, vhdup__list *node) {
  node->prev = pos->prev;
  node->next = pos;
  pos->prev->next = node;
  pos->prev = node;
}

static inline void vhdup__list_push_tail(vhdup__list *head, vhdup__list *node) {
  vhdup__list_insert_before(head, node);
}

static inline void vhdup__list_push_head(vhdup__list *head, vhdup__list *node) {
  vhdup__list_insert_before(head->next, node);
}

/* Unlinks node and leaves it pointing at itself (so vhdup__list_linked is 0
 * and a second remove is harmless). */
static inline void vhdup__list_remove(vhdup__list *node) {
  node->prev->next = node->next;
  node->next->prev = node->prev;
  node->next = node;
  node->prev = node;
}

/* Unlinks and returns the first node, or NULL when empty. */
static inline vhdup__list *vhdup__list_pop_head(vhdup__list *head) {
  vhdup__list *n = vhdup__list_first(head);
  if (n != NULL)
    vhdup__list_remove(n);
  return n;
}

#endif
