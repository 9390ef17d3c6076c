<!DOCTYPE qgis PUBLIC 'http://mrcc.com/qgis.dtd' 'SYSTEM'>
<qgis styleCategories="AllStyleCategories" version="3.22.16-Białowieża" maxScale="0" minScale="1e+08" hasScaleBasedVisibilityFlag="0">
  <flags>
    <Identifiable>1</Identifiable>
    <Removable>1</Removable>
    <Searchable>1</Searchable>
    <Private>0</Private>
  </flags>
  <temporal mode="0" fetchMode="0" enabled="0">
    <fixedRange>
      <start></start>
      <end></end>
    </fixedRange>
  </temporal>
  <customproperties>
    <Option type="Map">
      <Option value="Value" name="identify/format" type="QString"/>
    </Option>
  </customproperties>
  <pipe-data-defined-properties>
    <Option type="Map">
      <Option value="" name="name" type="QString"/>
      <Option name="properties"/>
      <Option value="collection" name="type" type="QString"/>
    </Option>
  </pipe-data-defined-properties>
  <pipe>
    <provider>
      <resampling zoomedInResamplingMethod="nearestNeighbour" enabled="false" zoomedOutResamplingMethod="nearestNeighbour" maxOversampling="2"/>
    </provider>
    <rasterrenderer classificationMin="-3.14159" opacity="1" band="1" type="singlebandpseudocolor" nodataColor="" classificationMax="3.14159" alphaBand="-1">
      <minMaxOrigin>
        <limits>None</limits>
        <extent>WholeRaster</extent>
        <statAccuracy>Estimated</statAccuracy>
        <cumulativeCutLower>0.02</cumulativeCutLower>
        <cumulativeCutUpper>0.98</cumulativeCutUpper>
        <stdDevFactor>2</stdDevFactor>
      </minMaxOrigin>
      <rastershader>
        <colorrampshader classificationMode="1" maximumValue="3.1415899999999999" labelPrecision="6" colorRampType="INTERPOLATED" clip="0" minimumValue="-3.1415899999999999">
          <colorramp name="[source]" type="gradient">
            <Option type="Map">
              <Option value="215,25,28,255" name="color1" type="QString"/>
              <Option value="215,25,28,255" name="color2" type="QString"/>
              <Option value="0" name="discrete" type="QString"/>
              <Option value="gradient" name="rampType" type="QString"/>
              <Option value="0.166667;253,174,97,255:0.333333;255,255,191,255:0.5;26,150,65,255:0.666667;43,131,186,255:0.833333;123,50,148,255" name="stops" type="QString"/>
            </Option>
            <prop k="color1" v="215,25,28,255"/>
            <prop k="color2" v="215,25,28,255"/>
            <prop k="discrete" v="0"/>
            <prop k="rampType" v="gradient"/>
            <prop k="stops" v="0.166667;253,174,97,255:0.333333;255,255,191,255:0.5;26,150,65,255:0.666667;43,131,186,255:0.833333;123,50,148,255"/>
          </colorramp>
          <item value="-3.14159" label="-3.14159" color="#d7191c" alpha="255"/>
          <item value="-2.513272" label="-2.51327" color="#ee7245" alpha="255"/>
          <item value="-1.884954" label="-1.88495" color="#fdbe74" alpha="255"/>
          <item value="-1.256636" label="-1.25664" color="#ffefac" alpha="255"/>
          <item value="-0.628318" label="-0.628318" color="#a3d58d" alpha="255"/>
          <item value="0" label="0" color="#1a9641" alpha="255"/>
          <item value="0.628318" label="0.628318" color="#248b8a" alpha="255"/>
          <item value="1.256636" label="1.25664" color="#3b73b2" alpha="255"/>
          <item value="1.884954" label="1.88495" color="#6b429c" alpha="255"/>
          <item value="2.513272" label="2.51327" color="#a02864" alpha="255"/>
          <item value="3.14159" label="3.14159" color="#d7191c" alpha="255"/>
          <rampLegendSettings orientation="2" suffix="" useContinuousLegend="1" minimumLabel="" direction="0" maximumLabel="" prefix="">
            <numericFormat id="basic">
              <Option type="Map">
                <Option value="" name="decimal_separator" type="QChar"/>
                <Option value="6" name="decimals" type="int"/>
                <Option value="0" name="rounding_type" type="int"/>
                <Option value="false" name="show_plus" type="bool"/>
                <Option value="true" name="show_thousand_separator" type="bool"/>
                <Option value="false" name="show_trailing_zeros" type="bool"/>
                <Option value="" name="thousand_separator" type="QChar"/>
              </Option>
            </numericFormat>
          </rampLegendSettings>
        </colorrampshader>
      </rastershader>
    </rasterrenderer>
    <brightnesscontrast brightness="0" contrast="0" gamma="1"/>
    <huesaturation grayscaleMode="0" colorizeGreen="128" saturation="0" colorizeRed="255" invertColors="0" colorizeBlue="128" colorizeStrength="100" colorizeOn="0"/>
    <rasterresampler maxOversampling="2"/>
    <resamplingStage>resamplingFilter</resamplingStage>
  </pipe>
  <blendMode>0</blendMode>
</qgis>
