package nodes

import (
	"encoding/binary"
	"image"
	"image/color"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// xwd makes an X Window Dump as Xvfb's -fbdir file is: ZPixmap, 32 bits
// per pixel, least significant byte first, two colormap entries.
func xwd(w, h int, px func(x, y int) uint32) []byte {
	const ncolors = 2
	head := make([]uint32, 25)
	head[0] = 25*4 + 8 // the header and a window name
	head[1], head[2], head[3], head[4], head[5] = 7, 2, 24, uint32(w), uint32(h)
	head[7], head[11], head[12] = 0, 32, uint32(w*4)
	head[14], head[15], head[16], head[19] = 0xff0000, 0xff00, 0xff, ncolors
	var b []byte
	for _, v := range head {
		b = binary.BigEndian.AppendUint32(b, v)
	}
	b = append(b, "Xvfb\x00\x00\x00\x00"...)
	b = append(b, make([]byte, ncolors*12)...)
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			b = binary.LittleEndian.AppendUint32(b, px(x, y))
		}
	}
	return b
}

func TestDecodeXWDAndBlankFrames(t *testing.T) {
	img, err := decodeXWD(xwd(4, 3, func(x, y int) uint32 {
		if x == 2 && y == 1 {
			return 0x123456
		}
		return 0
	}))
	require.NoError(t, err)
	assert.Equal(t, image.Rect(0, 0, 4, 3), img.Bounds())
	assert.Equal(t, color.RGBA{0x12, 0x34, 0x56, 255}, img.At(2, 1))
	assert.Equal(t, color.RGBA{0, 0, 0, 255}, img.At(0, 0))
	assert.False(t, blank(img))

	black, err := decodeXWD(xwd(4, 3, func(int, int) uint32 { return 0 }))
	require.NoError(t, err)
	assert.True(t, blank(black), "the root window alone is no screenshot")

	_, err = decodeXWD(xwd(4, 3, func(int, int) uint32 { return 0 })[:120])
	assert.EqualError(t, err, "xwd: short pixel data")
	_, err = decodeXWD([]byte("short"))
	assert.EqualError(t, err, "xwd: short header")
}
