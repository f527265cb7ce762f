package testutil

import "encoding/binary"

// PESection is one section of a test PE image.
type PESection struct {
	Name string // up to 8 bytes
	Data []byte // padded to 512 bytes in the file
}

// PE is a minimal PE32+ EFI application with the given sections: 512 bytes
// of headers, then each section's data at a 512-byte boundary, mapped at
// 4 KiB boundaries from 0x1000. debug/pe, sbsign and osslsigncode read it
// like any EFI binary.
func PE(sections ...PESection) []byte {
	const headers, fileAlign, sectAlign = 0x200, 0x200, 0x1000
	pe := make([]byte, headers)
	pe[0], pe[1] = 'M', 'Z'
	binary.LittleEndian.PutUint32(pe[0x3c:], 0x40)
	copy(pe[0x40:], "PE\x00\x00")
	coff := 0x44
	binary.LittleEndian.PutUint16(pe[coff:], 0x8664) // x86-64
	binary.LittleEndian.PutUint16(pe[coff+2:], uint16(len(sections)))
	binary.LittleEndian.PutUint16(pe[coff+16:], 240) // PE32+ optional header with 16 directories
	binary.LittleEndian.PutUint16(pe[coff+18:], 0x22)
	opt := coff + 20
	binary.LittleEndian.PutUint16(pe[opt:], 0x20b)
	binary.LittleEndian.PutUint32(pe[opt+16:], sectAlign) // AddressOfEntryPoint: the first section
	binary.LittleEndian.PutUint32(pe[opt+20:], sectAlign) // BaseOfCode
	binary.LittleEndian.PutUint64(pe[opt+24:], 0x400000)  // ImageBase
	binary.LittleEndian.PutUint32(pe[opt+32:], sectAlign) // SectionAlignment
	binary.LittleEndian.PutUint32(pe[opt+36:], fileAlign) // FileAlignment
	binary.LittleEndian.PutUint32(pe[opt+60:], headers)   // SizeOfHeaders
	binary.LittleEndian.PutUint16(pe[opt+68:], 10)        // EFI application
	binary.LittleEndian.PutUint32(pe[opt+108:], 16)       // NumberOfRvaAndSizes
	va := uint32(sectAlign)
	for i, s := range sections {
		data := append([]byte(nil), s.Data...)
		for len(data) == 0 || len(data)%fileAlign != 0 {
			data = append(data, 0)
		}
		e := pe[opt+240+40*i:]
		copy(e, s.Name)
		binary.LittleEndian.PutUint32(e[8:], uint32(len(data)))  // VirtualSize
		binary.LittleEndian.PutUint32(e[12:], va)                // VirtualAddress
		binary.LittleEndian.PutUint32(e[16:], uint32(len(data))) // SizeOfRawData
		binary.LittleEndian.PutUint32(e[20:], uint32(len(pe)))   // PointerToRawData
		binary.LittleEndian.PutUint32(e[36:], 0x60000020)        // code, execute, read
		pe = append(pe, data...)
		va += (uint32(len(data)) + sectAlign - 1) / sectAlign * sectAlign
	}
	binary.LittleEndian.PutUint32(pe[opt+4:], uint32(len(pe)-headers)) // SizeOfCode
	binary.LittleEndian.PutUint32(pe[opt+56:], va)                     // SizeOfImage
	return pe
}

// TinyPE is a PE image with one .text section that returns EFI_SUCCESS.
func TinyPE() []byte {
	text := make([]byte, 0x200)
	copy(text, []byte{0x31, 0xc0, 0xc3}) // xor eax,eax; ret
	copy(text[0x10:], "kiln authenticode test image\x00")
	return PE(PESection{Name: ".text", Data: text})
}
