/*
 * Entry points of the apicmap QEMU test guest (GNU as, AT&T syntax).
 *
 * _start:      the multiboot entry of the BSP (Multiboot Specification 0.6.96, section 3.2:
 *              EAX = 0x2BADB002, EBX = the multiboot information, protected mode, paging off).
 * tramp_*:     the AP start-up trampoline, copied by the BSP to TRAMP_BASE, below 1 MiB, because a
 *              SIPI starts an AP in real mode at vector << 12 (SDM Vol. 3A 8.4.4.1).
 * isr_stubs:   256 interrupt gates, 16 bytes apart, each pushing its vector number.
 */
#include "guest.h"

        .set MB_MAGIC, 0x1BADB002
        .set MB_FLAGS, 0x00000003      /* page-align modules, give memory information */

        .section .multiboot, "a"
        .align 4
        .long MB_MAGIC
        .long MB_FLAGS
        .long -(MB_MAGIC + MB_FLAGS)

        .section .text
        .code32
        .globl _start
_start:
        cli
        lgdt    gdt_desc
        ljmp    $SEL_CODE, $1f
1:      mov     $SEL_DATA, %cx
        mov     %cx, %ds
        mov     %cx, %es
        mov     %cx, %ss
        mov     %cx, %fs
        mov     %cx, %gs
        mov     $stack_area + STACK_SIZE, %esp    /* stack slot 0 belongs to the BSP */
        push    %ebx
        push    %eax
        call    bsp_main
2:      hlt
        jmp     2b

/* --- AP trampoline: real mode, position-dependent on TRAMP_BASE ----------------------------- */
        .code16
        .globl tramp_start, tramp_end
tramp_start:
        cli
        xor     %ax, %ax
        mov     %ax, %ds
        lgdtl   (tramp_gdt_desc - tramp_start + TRAMP_BASE)
        mov     %cr0, %eax
        or      $1, %eax
        mov     %eax, %cr0
        ljmpl   $SEL_CODE, $ap_entry32
        .align 4
tramp_gdt_desc:
        .word   gdt_end - gdt - 1
        .long   gdt
tramp_end:

        .code32
ap_entry32:
        mov     $SEL_DATA, %cx
        mov     %cx, %ds
        mov     %cx, %es
        mov     %cx, %ss
        mov     %cx, %fs
        mov     %cx, %gs
        /* Every AP takes a ticket: its stack slot is ticket + 1 (slot 0 is the BSP's). */
        mov     $1, %eax
        lock xadd %eax, ap_ticket
        inc     %eax
        mov     %eax, %ecx
        shl     $STACK_SHIFT, %ecx
        add     $stack_area + STACK_SIZE, %ecx
        mov     %ecx, %esp
        push    %eax
        call    ap_main
3:      hlt
        jmp     3b

/* --- interrupt stubs -------------------------------------------------------------------------- */
        .align 16
        .globl isr_stubs
isr_stubs:
        .set vec, 0
        .rept 256
        .align 16
        push    $vec
        jmp     isr_common
        .set vec, vec + 1
        .endr

isr_common:
        pusha
        cld
        mov     32(%esp), %eax          /* the vector pushed by the stub, above the 8 saved GPRs */
        push    %esp
        push    %eax
        call    isr_dispatch
        add     $8, %esp
        popa
        add     $4, %esp
        iret

        .section .note.GNU-stack, "", @progbits

/* --- GDT: flat 4 GiB code and data ------------------------------------------------------------- */
        .section .data
        .align 8
        .globl gdt
gdt:
        .quad   0
        .quad   0x00CF9A000000FFFF
        .quad   0x00CF92000000FFFF
gdt_end:
gdt_desc:
        .word   gdt_end - gdt - 1
        .long   gdt

        .globl ap_ticket
        .align 4
ap_ticket:
        .long   0

        .section .bss
        .align 4096
        .globl stack_area
stack_area:
        .space  STACK_SIZE * MAX_CPUS
