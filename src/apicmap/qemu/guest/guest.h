/*
 * apicmap QEMU test guest: constants shared by boot.S and guest.c.
 *
 * The guest is a 32-bit multiboot (v1) kernel: QEMU's -kernel loader accepts only 32-bit
 * ELF multiboot images (hw/i386/multiboot.c, load_multiboot).
 */
#ifndef APICMAP_GUEST_H
#define APICMAP_GUEST_H

#define MAX_CPUS        255         /* QEMU 7.2 apic_realize: APIC IDs must be below MAX_APICS (255) */
#define STACK_SHIFT     12
#define STACK_SIZE      (1 << STACK_SHIFT)
#define TRAMP_BASE      0x8000      /* SIPI vector 0x08: the AP starts at 0x0800:0000 (SDM 8.4.4.1) */
#define SEL_CODE        0x08
#define SEL_DATA        0x10

#endif

/* Output: isa-debugcon. Not the customary 0xe9: pc-testdev's byte port covers 0xe8-0xeb
   (hw/misc/pc-testdev.c, testdev_realizefn), so the two would overlap there. */
#define DEBUGCON_PORT   0x4e9
/* isa-debug-exit: QEMU exits with status (value << 1) | 1 (hw/misc/debugexit.c). */
#define DEBUG_EXIT_PORT 0xf4
/* pc-testdev: a byte written to 0x2000 + n sets ISA IRQ n to (value != 0); n must be below 16
   (hw/misc/pc-testdev.c, test_irq_line_write -> isa_get_irq asserts isairq < ISA_NUM_IRQS). */
#define TESTDEV_IRQ_PORT 0x2000

/* The job: a multiboot module of little-endian 32-bit words, written by apicmap/qemu/job.py. */
#define JOB_MAGIC       0x314A5041u  /* "APJ1" */
#define JOB_CPU_WORDS   6            /* apic_id, ldr, dfr, svr_enable, tpr, flags */
#define JOB_CPU_HW_DISABLED 1u       /* flags: clear IA32_APIC_BASE.EN (the APIC is hardware-disabled) */
#define JOB_INT_WORDS   6            /* kind, source, a, b, c, reserved */
#define JOB_MSI         1            /* a = address, b = data: the source CPU writes b at a */
#define JOB_ICR         2            /* a = ICR low, b = ICR2 (destination in 31:24) */
#define JOB_IOAPIC      3            /* a = pin, b = RTE low, c = RTE high */
