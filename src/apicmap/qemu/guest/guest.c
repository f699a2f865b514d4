/*
 * apicmap QEMU test guest: which CPUs take an interrupt, observed from inside the guest.
 *
 * The BSP reads the job (a multiboot module), starts every AP with INIT-SIPI-SIPI, and then
 * drives all CPUs through the same steps for each interrupt of the job:
 *   PROGRAM  every CPU writes its local APIC as the job says (ID, LDR, DFR, TPR, SVR) and
 *            clears its record;
 *   SEND     one CPU sends the interrupt (an MSI write, an ICR write, or an IOAPIC pin);
 *   SETTLE   every CPU opens interrupts for a while, so that what it accepted is taken,
 *            then reads what is still pending in its IRR and drains it;
 * and the BSP prints one line saying which CPU took which vector, and which took an NMI.
 *
 * A fixed/lowest interrupt counts as taken when its handler runs with the vector's ISR bit
 * set (the APIC dispatched it: SDM Vol. 3A 10.8.4); the handler reads the TMR bit and EOIs.
 * An interrupt that is accepted but not dispatched (software-disabled APIC, or blocked by the
 * TPR) stays in the IRR, where SETTLE finds it. An NMI runs the IDT entry 2 handler.
 */
#include <stdint.h>
#include "guest.h"

typedef uint8_t u8;
typedef uint16_t u16;
typedef uint32_t u32;

#define APIC_BASE       0xFEE00000u
#define IOAPIC_BASE     0xFEC00000u
/* Local APIC register offsets (SDM Vol. 3A Table 10-1). */
#define APIC_ID         0x020
#define APIC_TPR        0x080
#define APIC_EOI        0x0B0
#define APIC_LDR        0x0D0
#define APIC_DFR        0x0E0
#define APIC_SVR        0x0F0
#define APIC_ISR        0x100
#define APIC_TMR        0x180
#define APIC_IRR        0x200
#define APIC_ICR_LO     0x300
#define APIC_ICR_HI     0x310
#define APIC_LVT_TIMER  0x320
#define APIC_LVT_THERM  0x330
#define APIC_LVT_PERF   0x340
#define APIC_LVT_LINT0  0x350
#define APIC_LVT_LINT1  0x360
#define APIC_LVT_ERROR  0x370
#define LVT_MASKED      (1u << 16)
#define SPURIOUS_VECTOR 0xFF

#define STEP_PROGRAM    1
#define STEP_SEND       2
#define STEP_SETTLE     3

/* How long a CPU keeps interrupts open in SETTLE, in PAUSE iterations. QEMU sets the IRR
   bits of every target inside the sender's MMIO or port write (hw/intc/apic.c, apic_set_irq),
   before the sender reports SEND done; the target takes them at its next TB boundary. */
#define SETTLE_SPINS    1000
#define DRAIN_SPINS     200000
#define AP_WAIT_SPINS   50000000u

struct job_cpu { u32 apic_id, ldr, dfr, svr_enable, tpr, flags; };
struct job_int { u32 kind, source, a, b, c, reserved; };

struct percpu {
    volatile u32 taken[8];      /* vectors whose handler ran with the ISR bit set */
    volatile u32 taken_tmr[8];  /* ... and with the TMR bit set (level-triggered) */
    volatile u32 pending[8];    /* IRR bits still set after SETTLE opened interrupts */
    volatile u32 pending_tmr[8];
    volatile u32 nmi;
    volatile u32 spurious;
    volatile u32 draining;
    volatile u32 ack;
    volatile u32 alive;
};

extern char stack_area[];
extern char tramp_start[], tramp_end[];
extern char isr_stubs[];
extern char __image_end[];
extern volatile u32 ap_ticket;

static struct percpu cpus[MAX_CPUS];
static volatile u32 slot_of_stack[MAX_CPUS];   /* stack slot -> initial APIC ID (= QEMU CPU index) */
static u32 ncpu;
static u32 nint;
static const struct job_cpu *job_cpus;
static const struct job_int *job_ints;

static volatile u32 step_seq;
static volatile u32 step_kind;
static volatile u32 step_index;

struct idt_entry { u16 off_lo, sel; u8 zero, type; u16 off_hi; } __attribute__((packed));
static struct idt_entry idt[256];
static struct { u16 limit; u32 base; } __attribute__((packed)) idt_desc;

/* --- port and MMIO access ------------------------------------------------------------------- */

static inline void outb(u16 port, u8 v) { __asm__ volatile("outb %0, %1" : : "a"(v), "Nd"(port)); }
static inline u32 apic_read(u32 off) { return *(volatile u32 *)(APIC_BASE + off); }
static inline void apic_write(u32 off, u32 v) { *(volatile u32 *)(APIC_BASE + off) = v; }
static inline void cpu_relax(void) { __asm__ volatile("pause" ::: "memory"); }
static inline void irq_on(void) { __asm__ volatile("sti" ::: "memory"); }
static inline void irq_off(void) { __asm__ volatile("cli" ::: "memory"); }
static inline void barrier(void) { __asm__ volatile("" ::: "memory"); }

static inline void wrmsr(u32 msr, u32 lo, u32 hi) { __asm__ volatile("wrmsr" : : "c"(msr), "a"(lo), "d"(hi)); }
static inline u32 rdmsr_lo(u32 msr)
{
    u32 lo, hi;
    __asm__ volatile("rdmsr" : "=a"(lo), "=d"(hi) : "c"(msr));
    (void)hi;
    return lo;
}
#define MSR_APIC_BASE   0x1B
#define APIC_BASE_EN    (1u << 11)

static void ioapic_write(u32 reg, u32 v)
{
    /* IOREGSEL at +0x00, IOWIN at +0x10 (82093AA datasheet 3.1; hw/intc/ioapic.c). */
    *(volatile u32 *)(IOAPIC_BASE) = reg;
    *(volatile u32 *)(IOAPIC_BASE + 0x10) = v;
}

/* --- output ----------------------------------------------------------------------------------- */

static void putc_(char c) { outb(DEBUGCON_PORT, (u8)c); }
static void puts_(const char *s) { while (*s) putc_(*s++); }
static void puthex(u32 v)
{
    static const char digits[] = "0123456789abcdef";
    char buf[9];
    int i = 8;
    buf[8] = 0;
    do { buf[--i] = digits[v & 15]; v >>= 4; } while (v && i > 0);
    puts_(&buf[i]);
}

static void __attribute__((noreturn)) quit(u8 code)
{
    outb(DEBUG_EXIT_PORT, code);
    for (;;) __asm__ volatile("cli; hlt");
}

static void __attribute__((noreturn)) fail(const char *what, u32 value)
{
    puts_("X ");
    puts_(what);
    putc_(' ');
    puthex(value);
    putc_('\n');
    quit(1);
}

/* --- per-CPU identity -------------------------------------------------------------------------- */

/* Which CPU am I? Not the APIC ID register: the job rewrites it (aliases are the point). Each
   CPU runs on its own stack slot, and interrupt gates stay on the current ring-0 stack. */
static u32 my_slot(void)
{
    u32 esp;
    __asm__ volatile("mov %%esp, %0" : "=r"(esp));
    return slot_of_stack[(esp - (u32)stack_area) >> STACK_SHIFT];
}

static u32 initial_apic_id(void)
{
    /* CPUID.01H:EBX[31:24], the initial APIC ID (SDM Vol. 2A, CPUID). */
    u32 a = 1, b, c = 0, d;
    __asm__ volatile("cpuid" : "+a"(a), "=b"(b), "+c"(c), "=d"(d));
    return b >> 24;
}

/* --- interrupts ----------------------------------------------------------------------------- */

void isr_dispatch(u32 vector, u32 *frame);
void isr_dispatch(u32 vector, u32 *frame)
{
    struct percpu *c = &cpus[my_slot()];
    u32 word = vector >> 5, bit = 1u << (vector & 31);

    if (vector == 2) {          /* NMI: IDT entry 2 (SDM Vol. 3A 6.3.1) */
        c->nmi++;
        return;
    }
    if (!(apic_read(APIC_ISR + 0x10 * word) & bit)) {
        /* No ISR bit: a spurious interrupt (SVR vector, SDM 10.9: no EOI), or an exception. */
        if (vector < 32)
            fail("exception", vector | (frame[9] << 8));
        c->spurious++;
        return;
    }
    if (!c->draining) {
        c->taken[word] |= bit;
        if (apic_read(APIC_TMR + 0x10 * word) & bit)
            c->taken_tmr[word] |= bit;
    }
    apic_write(APIC_EOI, 0);
}

static void set_gate(int v, u32 handler)
{
    idt[v].off_lo = (u16)handler;
    idt[v].sel = SEL_CODE;
    idt[v].zero = 0;
    idt[v].type = 0x8E;         /* present, DPL 0, 32-bit interrupt gate */
    idt[v].off_hi = (u16)(handler >> 16);
}

static void load_idt(void)
{
    __asm__ volatile("lidt %0" : : "m"(idt_desc));
}

/* --- the job's APIC state -------------------------------------------------------------------- */

static void program_apic(u32 slot)
{
    const struct job_cpu *j = &job_cpus[slot];
    struct percpu *c = &cpus[slot];
    int i;

    /* Every register routing reads, written as the job says (hw/intc/apic.c, apic_mem_write:
       ID bits 31:24, LDR bits 31:24, DFR bits 31:28, TPR, SVR bits 8:0). */
    apic_write(APIC_ID, j->apic_id << 24);
    apic_write(APIC_DFR, j->dfr);
    apic_write(APIC_LDR, j->ldr);
    apic_write(APIC_TPR, j->tpr);
    apic_write(APIC_LVT_TIMER, LVT_MASKED);
    apic_write(APIC_LVT_THERM, LVT_MASKED);
    apic_write(APIC_LVT_PERF, LVT_MASKED);
    apic_write(APIC_LVT_LINT0, LVT_MASKED);
    apic_write(APIC_LVT_LINT1, LVT_MASKED);
    apic_write(APIC_LVT_ERROR, LVT_MASKED);
    apic_write(APIC_SVR, SPURIOUS_VECTOR | (j->svr_enable ? 0x100 : 0));
    if (j->flags & JOB_CPU_HW_DISABLED) {
        /* Clear IA32_APIC_BASE.EN (SDM Vol. 3A 10.4.3). QEMU 7.2 cannot enable it again
           (hw/intc/apic.c, apic_set_base) but keeps the register page reachable by MMIO
           (cpu_get_current_apic), which is how this CPU still reads its IRR. */
        u32 base = rdmsr_lo(MSR_APIC_BASE);
        if (base & APIC_BASE_EN)
            wrmsr(MSR_APIC_BASE, base & ~APIC_BASE_EN, 0);
        apic_write(APIC_SVR, SPURIOUS_VECTOR);
    }
    for (i = 0; i < 8; i++) {
        c->taken[i] = 0;
        c->taken_tmr[i] = 0;
        c->pending[i] = 0;
        c->pending_tmr[i] = 0;
    }
    c->nmi = 0;
    c->spurious = 0;
}

static void send(const struct job_int *k)
{
    switch (k->kind) {
    case JOB_MSI:
        /* A CPU write to 0xFEExxxxx outside the register page (offset above 0xfff, or in the
           first 16 bytes) is an MSI in QEMU (hw/intc/apic.c, apic_mem_write -> apic_send_msi). */
        *(volatile u32 *)k->a = k->b;
        break;
    case JOB_ICR:
        /* ICR2 first; the write of the low word sends (SDM Vol. 3A 10.6.1). */
        apic_write(APIC_ICR_HI, k->b);
        apic_write(APIC_ICR_LO, k->a);
        break;
    case JOB_IOAPIC:
        /* Program the entry (high word first, so the low word's unmask comes last), then give
           the pin one pulse through pc-testdev. QEMU's IOAPIC delivers inside the rising
           write (hw/intc/ioapic.c, ioapic_set_irq -> ioapic_service); lowering it at once
           keeps a level entry from being re-delivered at each EOI (ioapic_eoi_broadcast). */
        ioapic_write(0x10 + 2 * k->a + 1, k->c);
        ioapic_write(0x10 + 2 * k->a, k->b);
        outb((u16)(TESTDEV_IRQ_PORT + k->a), 1);
        outb((u16)(TESTDEV_IRQ_PORT + k->a), 0);
        break;
    default:
        fail("bad interrupt kind", k->kind);
    }
}

static void spin(u32 n)
{
    while (n--)
        cpu_relax();
}

static void settle(u32 slot)
{
    struct percpu *c = &cpus[slot];
    u32 i, left = 0, n;

    irq_on();
    spin(SETTLE_SPINS);
    irq_off();
    for (i = 0; i < 8; i++) {
        u32 irr = apic_read(APIC_IRR + 0x10 * i);
        c->pending[i] = irr;
        c->pending_tmr[i] = apic_read(APIC_TMR + 0x10 * i) & irr;
        left |= irr;
    }
    if (!left)
        return;
    /* Accepted but not dispatched: let it through (TPR 0, APIC software-enabled) so the next
       interrupt starts from an empty IRR. PROGRAM puts the job's TPR and SVR back. */
    c->draining = 1;
    apic_write(APIC_TPR, 0);
    apic_write(APIC_SVR, SPURIOUS_VECTOR | 0x100);
    irq_on();
    for (n = 0; n < DRAIN_SPINS; n++) {
        left = 0;
        for (i = 0; i < 8; i++)
            left |= apic_read(APIC_IRR + 0x10 * i);
        if (!left)
            break;
        cpu_relax();
    }
    irq_off();
    c->draining = 0;
    if (left)
        fail("IRR did not drain on cpu", slot);
}

static void do_step(u32 slot, u32 kind, u32 index)
{
    const struct job_int *k = &job_ints[index];

    switch (kind) {
    case STEP_PROGRAM:
        program_apic(slot);
        break;
    case STEP_SEND:
        if (k->source == slot)
            send(k);
        break;
    case STEP_SETTLE:
        settle(slot);
        break;
    }
}

/* Every CPU but the BSP: wait for a step, do it, acknowledge it. Interrupts stay open while
   waiting, so the BSP can also see interrupts taken at any time after SEND. */
static void __attribute__((noreturn)) worker(u32 slot)
{
    struct percpu *c = &cpus[slot];
    u32 seen = 0;

    for (;;) {
        irq_on();
        while (step_seq == seen)
            cpu_relax();
        irq_off();
        seen = step_seq;
        barrier();
        do_step(slot, step_kind, step_index);
        barrier();
        c->ack = seen;
    }
}

static void run_step(u32 kind, u32 index)
{
    u32 seq = step_seq + 1, i;

    step_kind = kind;
    step_index = index;
    barrier();
    step_seq = seq;
    do_step(0, kind, index);
    cpus[0].ack = seq;
    for (i = 1; i < ncpu; i++)
        while (cpus[i].ack != seq)
            cpu_relax();
}

/* --- the report -------------------------------------------------------------------------------- */

static void report(u32 index)
{
    u32 s, w, b;

    puts_("I ");
    puthex(index);
    for (s = 0; s < ncpu; s++) {
        struct percpu *c = &cpus[s];
        int first = 1;
        for (w = 0; w < 8; w++) {
            for (b = 0; b < 32; b++) {
                u32 bit = 1u << b;
                if (!((c->taken[w] | c->pending[w]) & bit))
                    continue;
                putc_(first ? ' ' : ',');
                if (first) {
                    puthex(s);
                    putc_(':');
                    first = 0;
                }
                /* h: the handler ran; p: left pending in the IRR; t: TMR set */
                putc_(c->taken[w] & bit ? 'h' : 'p');
                puthex(w * 32 + b);
                if ((c->taken_tmr[w] | c->pending_tmr[w]) & bit)
                    putc_('t');
            }
        }
        if (c->nmi) {
            putc_(first ? ' ' : ',');
            if (first) {
                puthex(s);
                putc_(':');
            }
            putc_('n');
            puthex(c->nmi);
        }
    }
    putc_('\n');
}

/* --- start-up ----------------------------------------------------------------------------------- */

struct mb_info { u32 flags, mem_lower, mem_upper, boot_device, cmdline, mods_count, mods_addr; };
struct mb_module { u32 start, end, string, reserved; };

static void init_platform(void)
{
    int i;

    /* Nothing but the job may interrupt: mask both 8259s (OCW1), stop PIT channel 0 with its
       output low (mode 0, control word only; 8254 datasheet), mask every IOAPIC entry. */
    outb(0x21, 0xFF);
    outb(0xA1, 0xFF);
    outb(0x43, 0x30);
    for (i = 0; i < 24; i++) {
        ioapic_write(0x10 + 2 * i, 1u << 16);
        ioapic_write(0x10 + 2 * i + 1, 0);
    }
    for (i = 0; i < 256; i++)
        set_gate(i, (u32)isr_stubs + 16 * i);
    idt_desc.limit = sizeof(idt) - 1;
    idt_desc.base = (u32)idt;
}

static void start_aps(void)
{
    u32 n;
    char *dst = (char *)TRAMP_BASE;
    const char *src = tramp_start;

    while (src < tramp_end)
        *dst++ = *src++;
    /* INIT, then two start-up IPIs, to all excluding self (SDM Vol. 3A 8.4.4.1). */
    apic_write(APIC_ICR_HI, 0);
    apic_write(APIC_ICR_LO, 0x000C4500);
    spin(10000);
    apic_write(APIC_ICR_LO, 0x000C4600 | (TRAMP_BASE >> 12));
    spin(10000);
    apic_write(APIC_ICR_LO, 0x000C4600 | (TRAMP_BASE >> 12));
    for (n = 0; n < AP_WAIT_SPINS && ap_ticket < ncpu - 1; n++)
        cpu_relax();
    if (ap_ticket != ncpu - 1)
        fail("APs started", ap_ticket);
    for (n = 1; n < ncpu; n++) {
        u32 spins = 0;
        while (!cpus[n].alive) {
            if (++spins > AP_WAIT_SPINS)
                fail("AP not alive", n);
            cpu_relax();
        }
    }
}

void ap_main(u32 stack_slot);
void ap_main(u32 stack_slot)
{
    u32 slot = initial_apic_id();

    load_idt();
    if (slot >= ncpu)
        fail("AP initial APIC ID beyond -smp", slot);
    slot_of_stack[stack_slot] = slot;
    barrier();
    cpus[slot].alive = 1;
    worker(slot);
}

void bsp_main(u32 magic, const struct mb_info *mbi);
void bsp_main(u32 magic, const struct mb_info *mbi)
{
    const struct mb_module *mod;
    const u32 *job;
    u32 i, words;

    puts_("APICMAP-GUEST 1\n");
    if (magic != 0x2BADB002u)
        fail("multiboot magic", magic);
    if (!(mbi->flags & (1u << 3)) || mbi->mods_count < 1)
        fail("no job module", mbi->flags);
    mod = (const struct mb_module *)mbi->mods_addr;
    job = (const u32 *)mod->start;
    words = (mod->end - mod->start) / 4;
    if (mod->start < (u32)__image_end)
        fail("job module overlaps the image", mod->start);
    if (words < 4 || job[0] != JOB_MAGIC)
        fail("job magic", words ? job[0] : 0);
    ncpu = job[2];
    nint = job[3];
    if (ncpu < 1 || ncpu > MAX_CPUS || words != 4 + ncpu * JOB_CPU_WORDS + nint * JOB_INT_WORDS)
        fail("job size", words);
    job_cpus = (const struct job_cpu *)&job[4];
    job_ints = (const struct job_int *)&job[4 + ncpu * JOB_CPU_WORDS];
    if (initial_apic_id() != 0)
        fail("BSP initial APIC ID", initial_apic_id());
    slot_of_stack[0] = 0;

    init_platform();
    load_idt();
    if (ncpu > 1)
        start_aps();
    puts_("UP ");
    puthex(ncpu);
    putc_('\n');

    for (i = 0; i < nint; i++) {
        const struct job_int *k = &job_ints[i];
        if (k->source >= ncpu)
            fail("source CPU", k->source);
        run_step(STEP_PROGRAM, i);
        run_step(STEP_SEND, i);
        run_step(STEP_SETTLE, i);
        report(i);
        if (k->kind == JOB_IOAPIC) {
            /* Mask the entry as edge-triggered: QEMU clears Remote IRR on edge entries
               (hw/intc/ioapic.c, ioapic_fix_edge_remote_irr), e.g. after a level
               interrupt nobody accepted, so the next one starts clean. */
            ioapic_write(0x10 + 2 * k->a, 1u << 16);
            ioapic_write(0x10 + 2 * k->a + 1, 0);
        }
    }
    puts_("D\n");
    quit(0);
}
